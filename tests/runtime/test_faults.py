"""Throttling, 5xx and lost responses from AWS: retries succeed and nothing is lost or done twice.

botocore's own retries are switched off for the worker's clients, so what recovers here
is the runtime's: agentfleet.ops.retry (backoff, full jitter), conditional writes that make a
repeated write harmless, and the loop re-reading what it could not finish.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest
from botocore.config import Config

from agentfleet.entrypoints.worker import Clients, Worker
from agentfleet.ops.aws import client
from agentfleet.spec.catalog import subscribers
from tests.runtime.fakes import ScriptedBackend
from tests.runtime.faulty_proxy import FaultyProxy
from tests.runtime.support import Fleet, event, wait_for_count

pytestmark = pytest.mark.integration


def test_injected_throttling_and_server_errors_are_retried_and_nothing_is_lost(
        fleet: Fleet, running: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agentfleet")
    proxy = FaultyProxy(fleet.clients["kinesis"].meta.endpoint_url, every=4).start()
    try:
        no_sdk_retries = Config(retries={"mode": "standard", "total_max_attempts": 1})
        clients = Clients(*(client(name, endpoint_url=proxy.endpoint, config=no_sdk_retries)
                            for name in ("kinesis", "dynamodb", "stepfunctions")))
        events = [event(("ci.failed", "cloudwatch.alarm")[i % 2], f"svc-{i}", {"want": "notify"}) for i in range(12)]
        fleet.put(events)
        expected = Counter((e["id"], a.name) for e in events for a in subscribers(fleet.agents, e["type"]))
        handle = running(Worker(fleet.settings(batch_size=4), ScriptedBackend(batch_size=4), clients=clients,
                                sleep=lambda seconds: None))
        wait_for_count(fleet.decisions, sum(expected.values()), 90, "decisions")
        assert handle.stop() == 0
        decisions = fleet.decisions()  # after the drain: every started action is recorded by now
    finally:
        proxy.stop()
    assert all(count > 0 for count in proxy.injected.values()), proxy.injected
    messages = Counter(record.getMessage() for record in caplog.records)
    assert messages["retrying"] > 0, "agentfleet.ops.retry did the retrying"
    print("faults", proxy.injected, "forwarded", proxy.forwarded, "log", dict(messages))
    assert Counter((d["event_ids"][0], d["agent"]) for d in decisions) == expected
    assert {d["outcome"] for d in decisions} == {"acted"}
    executions = fleet.executions()
    assert sorted(e["name"] for e in executions) == sorted(d["decision_id"] for d in decisions)
    assert all(d.get("execution_arn") for d in decisions), "every dispatched decision knows its execution"
