"""The worker loop with the real tiny CPU model: two workers sharing a stream, and coalescing into batches."""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from agentfleet.entrypoints.worker import Worker
from agentfleet.serve.model.base import GenerationRequest, GenerationResult
from agentfleet.serve.model.cpu import TransformersBackend
from agentfleet.spec.catalog import subscribers
from agentfleet.spec.settings import Settings
from tests.runtime.support import Fleet, cdk_agents, event, wait_for_count, wait_until

pytestmark = pytest.mark.integration

EVENT_TYPES = ("ci.failed", "cloudwatch.alarm", "security.finding", "code.push", "ci.succeeded")


class Counting:
    """Wraps a real backend and counts generate calls (the model itself answers)."""

    def __init__(self, backend: TransformersBackend) -> None:
        self.inner, self.calls = backend, []
        self.name, self.model_id = backend.name, backend.model_id
        self.batch_size, self.max_prompt_tokens = backend.batch_size, backend.max_prompt_tokens
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def generate(self, requests: Sequence[GenerationRequest]) -> GenerationResult:
        with self._lock:
            self.calls.append(len(requests))
        return self.inner.generate(requests)

    def close(self) -> None:
        self.inner.close()


def _backend(model_dir: Path, settings: Settings) -> Counting:
    return Counting(TransformersBackend.from_dir(model_dir, settings))


def _expected(events: list[dict[str, Any]], agents: Any) -> Counter[tuple[str, str]]:
    return Counter((e["id"], a.name) for e in events for a in subscribers(agents, e["type"]))


def test_two_workers_share_four_shards_and_every_event_gets_one_decision_per_agent(
        fleet: Fleet, running: Any, tiny_model_dir: Path) -> None:
    fleet.agents = cdk_agents()
    settings = [fleet.settings(batch_size=4, max_new_tokens=96, sequence_length=1024) for _ in range(2)]
    workers = [running(Worker(s, _backend(tiny_model_dir, s))) for s in settings]

    def balanced() -> bool:
        owners = Counter(lease.get("owner") for lease in fleet.leases())
        return sorted(owners.values()) == [2, 2] and None not in owners

    wait_until(balanced, 30, "two workers holding two shards each")
    events = [event(EVENT_TYPES[i % len(EVENT_TYPES)], f"svc-{i}", {"build": i, "status": "failed"})
              for i in range(10)]
    fleet.put(events)
    expected = _expected(events, fleet.agents)
    wait_for_count(fleet.decisions, sum(expected.values()), 150, "decisions")
    assert all(w.stop() == 0 for w in workers)
    decisions = fleet.decisions()

    assert Counter((d["event_ids"][0], d["agent"]) for d in decisions) == expected
    assert {d["worker_id"] for d in decisions} == {s.worker_id for s in settings}, "both workers decided"
    assert all(d["model"] == settings[0].model_id and d["completion_tokens"] > 0 for d in decisions)
    executions = fleet.executions()
    dispatched = [d for d in decisions if d["outcome"] in ("acted", "approval_pending")]
    assert sorted(e["name"] for e in executions) == sorted(d["decision_id"] for d in dispatched)
    assert all("owner" not in lease for lease in fleet.leases()), "leases released on stop"


def test_concurrent_events_are_coalesced_into_ceil_n_over_batch_model_calls(
        fleet: Fleet, running: Any, tiny_model_dir: Path) -> None:
    fleet.agents = cdk_agents()
    events = [event("cloudwatch.alarm", f"alarm-{i}", {"state": "ALARM"}) for i in range(10)]
    fleet.put(events)  # all waiting before the worker starts: they arrive together
    settings = fleet.settings(batch_size=4, batch_max_wait_ms=500)
    backend = _backend(tiny_model_dir, settings)
    handle = running(Worker(settings, backend))
    wait_for_count(fleet.decisions, len(events), 150, "decisions")
    assert handle.stop() == 0
    assert len(backend.calls) == math.ceil(len(events) / 4), backend.calls
    assert sorted(backend.calls) == [2, 4, 4]
