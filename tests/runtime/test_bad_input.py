"""Every kind of bad input ends as a recorded, explained no-op, and the worker keeps going."""

from __future__ import annotations

import io
import json
from collections import Counter
from typing import Any

import pytest

from agentfleet.entrypoints.worker import Worker
from agentfleet.ops.metrics import Metrics
from agentfleet.spec import metric_names
from tests.runtime.fakes import ScriptedBackend
from tests.runtime.support import Fleet, event, wait_for_count

pytestmark = pytest.mark.integration


def test_each_bad_input_is_recorded_with_its_reason_and_the_worker_stays_alive(fleet: Fleet, running: Any) -> None:
    good = event("cloudwatch.alarm", "alarm-ok", {"want": "notify"})
    fleet.put([
        b"{this is not json",
        json.dumps({k: v for k, v in event("ci.failed", "x").items() if k != "subject"}).encode(),
        json.dumps(event("ci.failed", "big", {"blob": "x" * 3000})).encode(),
        json.dumps(event("ci.failed", "future", spec_version="9.9")).encode(),
        event("deploy.finished", "nobody-listens"),
        json.dumps({"id": "no-envelope", "status": "failed"}).encode(),  # JSON of no known wire format
        event("cloudwatch.alarm", "bad-model", {"want": "garbage"}),
        event("cloudwatch.alarm", "wants-ticket", {"want": "open_ticket"}),  # watcher may not open tickets
        event("rare.event", "r1", {"want": "notify"}),
        event("rare.event", "r2", {"want": "notify"}),  # limited: 1 per minute
        event("ci.succeeded", "needs-approval", {"want": "open_ticket"}),
        good,
    ])
    backend = ScriptedBackend(batch_size=4)
    emf = io.StringIO()
    settings = fleet.settings(max_record_bytes=2048, batch_size=4)
    worker = Worker(settings, backend, metrics=Metrics(settings.fleet_name, "emf", stream=emf))
    handle = running(worker)

    quarantined = wait_for_count(fleet.quarantined, 6, 60, "quarantine records")
    reasons = {q["reason"]: q for q in quarantined}
    assert set(reasons) == {"invalid_json", "missing_field", "oversize", "unknown_version", "no_subscriber",
                            "unknown_shape"}
    assert "subject" in reasons["missing_field"]["detail"]
    assert reasons["no_subscriber"]["event_type"] == "deploy.finished"
    assert all(q["pk"] == f"quarantine#{q['shard_id']}:{q['sequence_number']}" for q in quarantined)

    wait_for_count(fleet.decisions, 6, 60, "decisions")
    assert handle.thread.is_alive()
    assert handle.stop() == 0
    decisions = fleet.decisions()  # re-read after the drain: actions started after the audit write are in
    by_subject = {d["subject"]: d for d in decisions}
    assert by_subject["bad-model"]["outcome"] == "invalid_output"
    assert by_subject["bad-model"]["reason"].startswith("invalid_json")
    assert by_subject["wants-ticket"]["outcome"] == "disallowed"
    assert {by_subject["r1"]["outcome"], by_subject["r2"]["outcome"]} == {"acted", "rate_limited"}
    assert by_subject["needs-approval"]["outcome"] == "approval_pending"
    assert by_subject["alarm-ok"]["outcome"] == "acted"
    for d in decisions:
        assert d["reason"] or d["outcome"] == "acted", d

    # Dispatched: acted and approval_pending only, each once, with the approval flag passed on.
    executions = fleet.executions()
    dispatched = {d["decision_id"] for d in decisions if d["outcome"] in ("acted", "approval_pending")}
    assert {e["name"] for e in executions} == dispatched
    approval = fleet.clients["stepfunctions"].describe_execution(executionArn=by_subject["needs-approval"]["execution_arn"])
    assert json.loads(approval["input"])["approval_required"] is True

    # Metrics (flushed on stop) count every quarantine reason and decision outcome.
    totals: Counter[tuple[str, str]] = Counter()
    for line in map(json.loads, emf.getvalue().splitlines()):
        for name in ("EventsQuarantined", "Decisions"):
            if name in line:
                totals[(name, line.get("Reason") or line.get("Outcome"))] += line[name]
    assert totals == Counter({("EventsQuarantined", r): 1 for r in metric_names.QUARANTINE_REASONS}) + Counter(
        ("Decisions", d["outcome"]) for d in decisions)

    # Everything was handled, so every shard's checkpoint covers its last record.
    assert all(lease.get("checkpoint") for lease in fleet.leases() if lease["shard_id"] in
               {q["shard_id"] for q in quarantined} | {d["shard_id"] for d in decisions})
