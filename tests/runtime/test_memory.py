"""Agent memory in the memory table: bounded, expiring, conflict-safe, and fed back into prompts."""

from __future__ import annotations

import time
from typing import Any

import pytest

from agentfleet.decide.memory import MemoryStore
from agentfleet.entrypoints.worker import Worker
from agentfleet.spec.tables import memory_key
from tests.runtime.fakes import ScriptedBackend
from tests.runtime.support import Fleet, event, wait_for_count

pytestmark = pytest.mark.integration


def _store(fleet: Fleet, **kwargs: Any) -> MemoryStore:
    return MemoryStore(fleet.clients["dynamodb"], fleet.names.memory_table, **{"max_items": 3, "ttl_days": 2, **kwargs})


def test_memory_is_bounded_expires_and_ignores_replays(fleet: Fleet) -> None:
    store = _store(fleet)
    memory = store.load("triage", "svc")
    for i in range(5):
        memory = store.record(memory, {"event_id": f"e{i}"}, {"decision_id": f"d{i}", "action": "notify"})
    replayed = store.record(memory, {"event_id": "e4"}, {"decision_id": "d4", "action": "ignore"})
    loaded = store.load("triage", "svc")
    assert [d["decision_id"] for d in loaded.decisions] == ["d2", "d3", "d4"]
    assert [o["event_id"] for o in loaded.observations] == ["e2", "e3", "e4"]
    assert replayed.version == loaded.version == 5
    item = fleet.clients["dynamodb"].get_item(TableName=fleet.names.memory_table,
                                              Key={"pk": {"S": memory_key("triage", "svc")}})["Item"]
    assert abs(int(item["expires_at"]["N"]) - (time.time() + 2 * 86400)) < 60
    # DynamoDB deletes expired items lazily; an expired item reads as empty memory.
    later = _store(fleet, clock=lambda: time.time() + 3 * 86400).load("triage", "svc")
    assert later.decisions == [] and later.version == 5


def test_concurrent_updates_merge_instead_of_overwriting(fleet: Fleet) -> None:
    a, b = _store(fleet), _store(fleet)
    base_a, base_b = a.load("triage", "svc"), b.load("triage", "svc")  # both read version 0
    a.record(base_a, {"event_id": "ea"}, {"decision_id": "da"})
    b.record(base_b, {"event_id": "eb"}, {"decision_id": "db"})  # conflicts, re-reads, merges
    assert [d["decision_id"] for d in a.load("triage", "svc").decisions] == ["da", "db"]


def test_the_next_prompt_for_a_subject_shows_the_previous_decision(fleet: Fleet, running: Any) -> None:
    backend = ScriptedBackend()
    fleet.put([event("cloudwatch.alarm", "db-1", {"want": "notify", "n": 1}),
               event("cloudwatch.alarm", "db-1", {"want": "ignore", "n": 2})])
    handle = running(Worker(fleet.settings(), backend))
    decisions = wait_for_count(fleet.decisions, 2, 30, "decisions")
    assert handle.stop() == 0
    assert backend.calls == [1, 1], "one agent and subject never share a batch"
    first = next(d for d in decisions if d["action"] == "notify")
    assert first["decision_id"] in backend.prompts[1] and first["decision_id"] not in backend.prompts[0]
