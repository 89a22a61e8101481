"""Continuous scheduling (issue 11): the Scheduler's choices and the sender threads around it.
No emulator: a fake pipeline whose steps the test gates with events."""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import time
from typing import Any

import pytest

from agentfleet.decide.pipeline import Completion
from agentfleet.decide.scheduler import Scheduler, WorkItem, read_ahead
from agentfleet.decide.sender import SendLoop
from agentfleet.entrypoints.replica_metrics import prefix_cache_gauges, replica_gauges
from agentfleet.ops.metrics import Metrics
from agentfleet.spec.events import Event, parse_record
from tests.runtime.support import TEST_AGENTS, event

AGENTS = {a.name: a for a in TEST_AGENTS}
URGENT = dataclasses.replace(AGENTS["watcher"], name="urgent", priority=5)
SHEDDER = dataclasses.replace(AGENTS["triage"], name="shedder", shed_after_seconds=2.0)


def _item(agent: Any, subject: str, seq: str, enqueued: float = 0.0, shard: str = "shard-1") -> WorkItem:
    evt = parse_record(json.dumps(event("ci.failed", subject)).encode(), 10_000)
    assert isinstance(evt, Event)
    return WorkItem(shard, seq, evt, agent, f"d{seq}{agent.name}", enqueued)


def _clock() -> tuple[list[float], Any]:
    now = [100.0]
    return now, lambda: now[0]


def test_one_pair_is_sent_in_order_and_only_after_its_predecessor_is_released() -> None:
    now, clock = _clock()
    sched = Scheduler(4, monotonic=clock)
    for i in range(3):
        sched.add(_item(AGENTS["triage"], "same", str(i)))
    sched.add(_item(AGENTS["watcher"], "same", "9"))  # another agent: its own pair
    first = sched.take()[1]
    second = sched.take()[1]
    assert first is not None and second is not None
    assert [first.sequence_number, second.sequence_number] == ["0", "9"]
    assert sched.take() == ([], None), "item 1 waits: item 0 has not written its memory"
    sched.returned(first)
    assert sched.take() == ([], None), "a returned model call is not enough: memory comes after finish"
    sched.requeue(first, delay=1.0)  # a failure puts it back in front, not before its delay
    assert sched.take() == ([], None) and first.attempts == 1
    now[0] += 1.0
    assert sched.take()[1] is first
    sched.returned(first)
    sched.release(first)
    nxt = sched.take()[1]
    assert nxt is not None and nxt.sequence_number == "1"
    assert sched.drop_shard("shard-1") == 1  # item 2 was still queued


def test_window_is_never_exceeded_and_a_returned_slot_is_reused() -> None:
    sched = Scheduler(3)
    items = [_item(AGENTS["triage"], f"s{i}", str(i)) for i in range(5)]
    for item in items:
        sched.add(item)
    taken = [sched.take()[1] for _ in range(3)]
    assert None not in taken and sched.sending == 3
    assert sched.take() == ([], None), "three requests in flight fill a window of three"
    sched.returned(taken[0])  # the model answered; its finish step may still be running
    assert sched.take()[1] is items[3] and sched.sending == 3


def test_under_saturation_higher_priority_goes_first_then_the_oldest() -> None:
    sched = Scheduler(1)
    sched.add(_item(AGENTS["triage"], "a", "1", enqueued=1.0))
    sched.add(_item(AGENTS["watcher"], "b", "2", enqueued=0.5))
    sched.add(_item(URGENT, "c", "3", enqueued=3.0))
    sched.add(_item(URGENT, "d", "4", enqueued=2.0))
    order = []
    while (item := sched.take()[1]) is not None:
        order.append(item.sequence_number)
        sched.returned(item)
        sched.release(item)
    assert order == ["4", "3", "2", "1"]


def test_an_item_older_than_shed_after_seconds_is_shed_not_sent() -> None:
    now, clock = _clock()
    sched = Scheduler(1, monotonic=clock)
    old = _item(SHEDDER, "x", "1", enqueued=now[0] - 2.5)
    fresh = _item(SHEDDER, "y", "2", enqueued=now[0] - 1.0)
    never = _item(AGENTS["triage"], "z", "3", enqueued=now[0] - 500.0)  # shed_after_seconds 0: never shed
    for item in (old, fresh, never):
        sched.add(item)
    shed, sent = sched.take()
    assert shed == [old] and sent is never  # the oldest non-shed item takes the one slot
    assert sched.take() == ([], None)
    now[0] += 1.0  # `fresh` is now 2.0 s old: it is shed even though no slot is free
    assert sched.take() == ([fresh], None)


def test_read_ahead_is_the_window_plus_a_small_queue() -> None:
    assert read_ahead(4) == 8 and read_ahead(64) == 32
    sched = Scheduler(4)
    assert sched.room() == 12
    for i in range(10):
        sched.add(_item(AGENTS["triage"], f"s{i}", str(i)))
    assert sched.room() == 2
    sent = sched.take()[1]
    assert sent is not None and sched.room() == 2, "a sent item still counts until it returns"
    sched.returned(sent)
    assert sched.room() == 3


class GatedPipeline:
    """The DecisionPipeline steps the senders call, gated by events so a test can hold any step."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.finished: list[str] = []
        self.finish_gate: dict[str, threading.Event] = {}
        self.model_gate = threading.Event()
        self.model_gate.set()
        self._lock = threading.Lock()

    def prepare(self, item: WorkItem) -> tuple[Any, str]:
        return None, f"prompt {item.sequence_number}"

    def send(self, item: WorkItem, request: Any) -> Completion:
        with self._lock:
            self.sent.append(item.sequence_number)
        self.model_gate.wait(10)
        return Completion("{}")

    def finish(self, item: WorkItem, memory: Any, completion: Completion) -> bool:
        gate = self.finish_gate.get(item.sequence_number)
        if gate is not None:
            gate.wait(10)
        with self._lock:
            self.finished.append(item.sequence_number)
        return True

    def failed(self, item: WorkItem, exc: BaseException) -> bool:
        return True

    def shed(self, item: WorkItem, age: float) -> bool:
        return True


def _loop(sched: Scheduler, pipeline: GatedPipeline, metrics: Metrics | None = None) -> tuple[SendLoop, list[WorkItem]]:
    done: list[WorkItem] = []
    loop = SendLoop(sched, pipeline, metrics or Metrics("t", "off"), on_done=done.append,  # type: ignore[arg-type]
                    on_retry=lambda item: pytest.fail(f"unexpected retry of {item.sequence_number}"))
    return loop, done


def _wait(predicate: Any, what: str) -> None:
    end = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < end, what
        time.sleep(0.01)


def test_sending_goes_on_while_a_finish_step_blocks() -> None:
    sched, pipeline = Scheduler(1), GatedPipeline()
    pipeline.finish_gate["0"] = threading.Event()  # item 0's audit/action/memory write hangs
    loop, done = _loop(sched, pipeline)
    loop.start()
    for i in range(4):
        sched.add(_item(AGENTS["triage"], f"s{i}", str(i)))
    _wait(lambda: pipeline.finished == ["1", "2", "3"], "items 1-3 sent and finished behind the blocked one")
    assert pipeline.sent == ["0", "1", "2", "3"], "one slot, yet sending never waited for item 0's finish"
    assert [i.sequence_number for i in done] == ["1", "2", "3"]
    pipeline.finish_gate["0"].set()
    _wait(lambda: len(done) == 4, "item 0 finished once its write returned")
    sched.close()
    loop.close()


def test_drain_past_its_deadline_hands_back_what_is_still_in_the_model() -> None:
    sched, pipeline = Scheduler(2), GatedPipeline()
    pipeline.model_gate.clear()  # the model hangs
    loop, done = _loop(sched, pipeline)
    loop.start()
    items = [_item(AGENTS["triage"], f"s{i}", str(i)) for i in range(3)]
    for item in items:
        sched.add(item)
    _wait(lambda: len(pipeline.sent) == 2, "both slots in use")
    assert sched.close() == 1, "the unsent item is dropped unacknowledged"
    assert loop.wait_idle(time.monotonic() + 0.2, tick=lambda: None) is False
    loop.abandon()
    pipeline.model_gate.set()  # the model answers after the deadline: nothing is acknowledged
    _wait(lambda: len(loop.left) == 2, "in-flight items left for the next owner")
    assert done == [] and pipeline.finished == [] and sched.active() == 0


def test_queue_time_and_model_time_are_observed_per_item() -> None:
    now, clock = _clock()
    out = io.StringIO()
    sched, pipeline = Scheduler(1, monotonic=clock), GatedPipeline()
    loop, done = _loop(sched, pipeline, Metrics("t", "emf", stream=out))
    loop._monotonic = clock
    sched.add(_item(AGENTS["triage"], "s", "1", enqueued=now[0] - 0.25))  # read 250 ms ago
    loop.start()
    _wait(lambda: len(done) == 1, "the item finished")
    sched.close()
    loop.close()
    loop.metrics.flush()
    line = json.loads(out.getvalue().splitlines()[0])
    assert line["QueueTime"] == 250.0 and line["ModelTime"] == 0.0


def test_replica_utilization_is_a_gauge_per_live_replica() -> None:
    out = io.StringIO()
    metrics = Metrics("t", "emf", stream=out)
    replica_gauges(metrics, SimpleLoad([(3, 4), (0, 0), (4, 4)]))  # replica 1 is down: 0 slots
    replica_gauges(metrics, object())  # a backend without replicas: nothing
    metrics.flush()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {line["Replica"]: line["ReplicaUtilization"] for line in lines} == {"0": 75.0, "2": 100.0}


class SimpleLoad:
    def __init__(self, load: list[tuple[int, int]]) -> None:
        self.load = load

    def replica_load(self) -> list[tuple[int, int]]:
        return self.load


class HitRates:
    def __init__(self, rates: list[float | None]) -> None:
        self.rates = rates

    def prefix_cache_hit_rate(self) -> list[float | None]:
        return self.rates


def test_prefix_cache_hit_rate_is_a_percent_gauge_per_replica_that_reported() -> None:
    out = io.StringIO()
    metrics = Metrics("t", "emf", stream=out)
    assert prefix_cache_gauges(metrics, HitRates([0.5, None, 0.25])) == 2  # replica 1 saw no query
    assert prefix_cache_gauges(metrics, object()) == 0  # a backend without replicas: nothing
    metrics.flush()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {line["Replica"]: line["PrefixCacheHitRate"] for line in lines} == {"0": 50.0, "2": 25.0}
