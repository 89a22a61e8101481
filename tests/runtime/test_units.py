"""Runtime building blocks that need no emulator: validation, retry, guardrails, ids,
lease balancing, checkpoint ledger, metrics and the health endpoint."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError

from agentfleet.act.dispatch import decision_id, execution_arn
from agentfleet.decide.guardrails import Guardrails
from agentfleet.ingest.consumer import ShardReader
from agentfleet.ingest.coordinator import ShardInfo, active_leases, plan
from agentfleet.ingest.leases import SHARD_END, Lease
from agentfleet.ops import retry
from agentfleet.ops.health import HealthServer
from agentfleet.ops.metrics import Metrics
from agentfleet.spec import metric_names
from agentfleet.spec.decisions import Decision
from agentfleet.spec.events import Event, Rejection, parse_record
from tests.runtime.support import TEST_AGENTS, event

AGENTS = {a.name: a for a in TEST_AGENTS}


def _raw(doc: Any) -> bytes:
    return json.dumps(doc).encode()


@pytest.mark.parametrize(("data", "reason"), [
    (b"{not json", "invalid_json"),
    (b"\xff\xfe", "invalid_json"),
    (_raw([1, 2]), "invalid_json"),
    (_raw({k: v for k, v in event("ci.failed", "s").items() if k != "subject"}), "missing_field"),
    (_raw({k: v for k, v in event("ci.failed", "s").items() if k != "spec_version"}), "missing_field"),
    (_raw(event("ci.failed", "s", id=7)), "missing_field"),
    (_raw(event("ci.failed", "s", time="yesterday")), "missing_field"),
    (_raw(event("ci.failed", "s", spec_version="2.0")), "unknown_version"),
    (_raw(event("ci.failed", "s", {"blob": "x" * 2000})), "oversize"),
])
def test_bad_records_are_rejected_with_a_reason(data: bytes, reason: str) -> None:
    result = parse_record(data, max_record_bytes=1024)
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert result.reason in metric_names.QUARANTINE_REASONS
    assert result.detail


def test_valid_record_parses_and_normalizes_time() -> None:
    doc = event("ci.failed", "svc-a", {"x": 1}, time="2025-01-01T13:00:00+01:00")
    parsed = parse_record(_raw(doc), max_record_bytes=1024)
    assert isinstance(parsed, Event)
    assert (parsed.type, parsed.subject, dict(parsed.payload)) == ("ci.failed", "svc-a", {"x": 1})
    assert parsed.utc_time() == "2025-01-01T12:00:00.000Z"


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


def test_retry_backs_off_with_full_jitter_then_succeeds() -> None:
    calls, sleeps = [], []
    failures = [_client_error("ThrottlingException", 400), _client_error("InternalFailure", 500)]

    def flaky() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return "ok"

    policy = retry.RetryPolicy(attempts=5, base_seconds=1.0, cap_seconds=3.0)
    assert retry.call(flaky, policy=policy, sleep=sleeps.append, rand=lambda: 1.0) == "ok"
    assert len(calls) == 3
    assert sleeps == [1.0, 2.0]  # rand()=1 shows the ceiling: base * 2**n, capped
    assert policy.delay(5, rand=lambda: 1.0) == 3.0
    assert policy.delay(5, rand=lambda: 0.0) == 0.0


def test_retry_does_not_retry_client_errors_and_gives_up_after_attempts() -> None:
    with pytest.raises(ClientError):
        retry.call(lambda: (_ for _ in ()).throw(_client_error("ValidationException", 400)), sleep=lambda _: None)
    attempts = []

    def always() -> None:
        attempts.append(1)
        raise _client_error("ThrottlingException", 400)

    with pytest.raises(ClientError):
        retry.call(always, policy=retry.RetryPolicy(attempts=3), sleep=lambda _: None)
    assert len(attempts) == 3


def _decision(action: str) -> Decision:
    return Decision(action, {"message": "m"}, "r", 0.5)


def test_guardrails_outcomes_in_order() -> None:
    now = [0.0]
    rails = Guardrails(TEST_AGENTS, dry_run=False, clock=lambda: now[0])
    triage, limited = AGENTS["triage"], AGENTS["limited"]
    assert rails.evaluate(triage, None, "invalid_json: x").outcome == "invalid_output"
    assert rails.evaluate(triage, _decision("ignore")).outcome == "ignored"
    assert rails.evaluate(triage, _decision("call_webhook")).outcome == "disallowed"
    verdict = rails.evaluate(triage, _decision("open_ticket"))
    assert (verdict.outcome, verdict.dispatch, verdict.approval_required) == ("approval_pending", True, True)
    assert rails.evaluate(triage, _decision("notify")).outcome == "acted"
    assert rails.evaluate(limited, _decision("notify")).outcome == "acted"
    limited_again = rails.evaluate(limited, _decision("notify"))
    assert (limited_again.outcome, limited_again.dispatch) == ("rate_limited", False)
    assert "1 actions per minute" in limited_again.reason
    now[0] += 60.0  # the bucket refills
    assert rails.evaluate(limited, _decision("notify")).outcome == "acted"
    dry = Guardrails(TEST_AGENTS, dry_run=True).evaluate(triage, _decision("notify"))
    assert (dry.outcome, dry.dispatch) == ("dry_run", False)
    outcomes = {"invalid_output", "ignored", "disallowed", "approval_pending", "acted", "rate_limited", "dry_run"}
    # "failed" and "shed" are the pipeline's, not the guardrails': a poison record or capped attempts, and an
    # item older than its agent's shed_after_seconds (decide/pipeline.py).
    assert outcomes | {"failed", "shed"} == set(metric_names.DECISION_OUTCOMES)


def test_decision_id_is_deterministic_and_a_valid_execution_name() -> None:
    seq = "49590338271490256608559692538361571095921575989136588898"
    first = decision_id("security-watch", "shardId-000000000003", seq)
    assert first == decision_id("security-watch", "shardId-000000000003", seq)
    assert first != decision_id("security-watch", "shardId-000000000003", seq[:-1] + "7")
    assert first != decision_id("ci-triage", "shardId-000000000003", seq)
    assert len(first) <= 80 and first.replace("-", "").replace("_", "").isalnum()
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:actions"
    assert execution_arn(arn, "n") == "arn:aws:states:us-east-1:123456789012:execution:actions:n"


def _lease(shard: str, owner: str = "", checkpoint: str = "", parents: tuple[str, ...] = ()) -> Lease:
    return Lease(shard, owner, 0, checkpoint, parents)


def test_plan_balances_to_the_fair_share() -> None:
    shards = {f"s{i}": ShardInfo(f"s{i}", (), None) for i in range(4)}
    leases = [_lease(f"s{i}", "a") for i in range(4)]
    alive = set(shards)
    # b owns nothing but its heartbeat makes it live: a (4 > ceil(4/2)) gives one up per tick.
    gives = plan(leases, shards, me="a", held={f"s{i}" for i in range(4)}, alive=alive, live_workers={"b"})
    assert (gives.give_up, gives.fair_share, gives.live_workers) == (["s3"], 2, 2)
    released = [*leases[:3], _lease("s3")]
    takes = plan(released, shards, me="b", held=set(), alive=alive, live_workers={"a"}, shuffle=lambda _: None)
    assert [lease.shard_id for lease in takes.take] == ["s3"]
    # Leases of a dead worker (counters standing still on b's clock) are free for the taking.
    expired = [_lease(f"s{i}", "dead") for i in range(4)]
    assert len(plan(expired, shards, me="b", held=set(), alive=set(), live_workers=set()).take) == 4


def test_child_shards_wait_for_finished_parents() -> None:
    shards = {"p": ShardInfo("p", (), "100"), "c1": ShardInfo("c1", ("p",), None), "c2": ShardInfo("c2", ("p",), None)}
    open_parent = [_lease("p", checkpoint="50"), _lease("c1", parents=("p",)), _lease("c2", parents=("p",))]
    assert [lease.shard_id for lease in active_leases(open_parent, shards)] == ["p"]
    done_parent = [_lease("p", checkpoint=SHARD_END), *open_parent[1:]]
    assert [lease.shard_id for lease in active_leases(done_parent, shards)] == ["c1", "c2"]
    # A parent past retention (gone from the stream, no lease row) does not block its children.
    assert len(active_leases(open_parent[1:], {k: v for k, v in shards.items() if k != "p"})) == 2
    # A parent that aged out of the stream before it reached SHARD_END (its lease row still says
    # checkpoint 50) no longer blocks its children either: nothing of it is left to read.
    aged_out = {k: v for k, v in shards.items() if k != "p"}
    assert [lease.shard_id for lease in active_leases(open_parent, aged_out)] == ["c1", "c2"]


def test_checkpoint_only_advances_over_fully_handled_records() -> None:
    reader = ShardReader(object(), "s", "shard-1", checkpoint="", poll_interval=1, limit=10, max_pending=10)
    reader.add("1", 2)  # two agents
    reader.add("2", 1)
    reader.add("3", 0)  # e.g. quarantined and written
    reader.done("2")
    assert reader.checkpointable() is None
    reader.done("1")
    assert reader.checkpointable() is None  # one of record 1's two items is still open
    reader.done("1")
    assert reader.checkpointable() == "3"
    # A failed write is offered again; after the commit there is nothing new.
    assert reader.checkpointable() == "3"
    reader.committed("3")
    assert reader.checkpointable() is None
    reader.ended = True
    assert reader.checkpointable() == SHARD_END


def test_metrics_emf_lines_use_only_known_names() -> None:
    out = io.StringIO()
    metrics = Metrics("fleet-a", "emf", stream=out)
    metrics.count(metric_names.DECISIONS, 1, Outcome="acted")
    metrics.count(metric_names.DECISIONS, 2, Outcome="acted")
    metrics.observe(metric_names.INFERENCE_LATENCY_MS, 12.5, "Milliseconds")
    metrics.observe(metric_names.INFERENCE_LATENCY_MS, 20.0, "Milliseconds")
    metrics.gauge(metric_names.BACKLOG_RECORDS, 5)
    metrics.gauge(metric_names.BACKLOG_RECORDS, 3)
    metrics.flush()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    by_dims = {tuple(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]): line for line in lines}
    acted = by_dims[("Fleet", "Outcome")]
    assert (acted["Fleet"], acted["Outcome"], acted["Decisions"]) == ("fleet-a", "acted", 3.0)
    plain = by_dims[("Fleet",)]
    assert plain["InferenceLatency"] == [12.5, 20.0] and plain["BacklogRecords"] == 3.0
    assert plain["_aws"]["CloudWatchMetrics"][0]["Namespace"] == metric_names.NAMESPACE
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.count("MadeUpMetric")
    with pytest.raises(ValueError, match="dimensions"):
        metrics.count(metric_names.DECISIONS, 1, Colour="x")


def test_metrics_put_mode_batches_put_metric_data() -> None:
    sent: list[dict[str, Any]] = []

    class FakeCloudWatch:
        def put_metric_data(self, **kwargs: Any) -> None:
            sent.append(kwargs)

    metrics = Metrics("fleet-a", "put", cloudwatch=FakeCloudWatch())
    for _ in range(3):
        metrics.count(metric_names.EVENTS_PROCESSED)
    metrics.observe(metric_names.BATCH_FILL_PERCENT, 50, "Percent")
    metrics.observe(metric_names.BATCH_FILL_PERCENT, 50, "Percent")
    metrics.flush()
    assert len(sent) == 1 and sent[0]["Namespace"] == "AgentFleet"
    data = {d["MetricName"]: d for d in sent[0]["MetricData"]}
    assert data["EventsProcessed"]["Values"] == [3.0]
    assert (data["BatchFill"]["Values"], data["BatchFill"]["Counts"]) == ([50.0], [2.0])


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_health_server_states_and_json_errors() -> None:
    server = HealthServer(port=0, host="127.0.0.1").start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        status, body = _get(base + "/ping")
        assert (status, body["status"]) == (503, "starting") and isinstance(body["time_of_last_update"], int)
        server.set_state("healthy")
        status, body = _get(base + "/ping")
        assert (status, body["status"]) == (200, "healthy")
        server.set_state("draining")
        assert _get(base + "/ping")[0] == 503
        status, body = _get(base + "/nope")
        assert status == 404 and body["error"] == "not_found"
        with pytest.raises(ValueError):
            server.set_state("confused")
    finally:
        server.stop()
