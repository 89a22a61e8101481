"""The main loop never blocks on retries (issue 12, runtime item 5): while DynamoDB throttles for
longer than a lease lasts, the loop keeps turning, renewals fail on their own schedule, and a stop
is honoured within the drain deadline; nothing is lost once the throttling ends."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from agentfleet.entrypoints.worker import Worker
from agentfleet.spec.catalog import subscribers
from tests.runtime.fakes import ScriptedBackend
from tests.runtime.faulty_proxy import FaultyProxy
from tests.runtime.support import Fleet, event, wait_for_count, wait_until

pytestmark = pytest.mark.integration
DEADLINE = 6


@pytest.mark.parametrize("fleet", [1], indirect=True)
def test_a_stop_is_honoured_while_dynamodb_throttles_longer_than_a_lease(
        fleet: Fleet, running: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = FaultyProxy(fleet.clients["kinesis"].meta.endpoint_url, every=0).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)  # the worker makes its own clients (Clients.create)
        settings = fleet.settings(shutdown_deadline_seconds=DEADLINE)
        fleet.put([event("cloudwatch.alarm", f"a-{i}", {"want": "notify"}) for i in range(2)])
        handle = running(Worker(settings, ScriptedBackend(delay=0.5)))
        wait_for_count(fleet.decisions, 2, 60, "decisions before the throttling")

        proxy.throttle(4 * settings.lease_seconds, "DynamoDB_")  # every DynamoDB call, for four lease durations
        later = [event("cloudwatch.alarm", f"b-{i}", {"want": "notify"}) for i in range(3)]
        fleet.put(later)
        turns = handle.worker.turns
        time.sleep(2.0)
        assert handle.worker.turns - turns >= 10, "the loop kept turning while every DynamoDB call was throttled"
        time.sleep(settings.lease_seconds)  # renewals have failed past the lease's end
        assert not handle.worker.leases.held, "a lease that could not be renewed is let go"

        stopped = time.monotonic()
        handle.worker.stop.set("test")
        handle.thread.join(DEADLINE + 10)
        took = time.monotonic() - stopped
        assert not handle.thread.is_alive() and took <= DEADLINE + 1, f"stop took {took:.1f} s"
        assert proxy.injected["throttle"] > 0
    finally:
        proxy.stop()

    # Once DynamoDB answers again, another worker finishes what the first could not: nothing lost.
    monkeypatch.setenv("AWS_ENDPOINT_URL", fleet.clients["kinesis"].meta.endpoint_url)
    second = running(Worker(fleet.settings(), ScriptedBackend()))
    expected = 2 + len(later) * len(subscribers(fleet.agents, "cloudwatch.alarm"))
    decisions = wait_for_count(fleet.decisions, expected, 60, "every decision")
    wait_until(lambda: not second.worker.scheduler and second.worker.scheduler.active() == 0, 10, "idle")
    assert second.stop() == 0
    assert max(Counter(d["decision_id"] for d in fleet.decisions()).values()) == 1
    assert len(decisions) == expected
