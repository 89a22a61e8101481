"""An item that outlives a lost and retaken lease cannot acknowledge the new reader's records
(issue 12, runtime item 10): work items carry their reader's generation (the lease counter)."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

from agentfleet.decide.scheduler import Scheduler, WorkItem
from agentfleet.ingest.coordinator import Changes
from agentfleet.ingest.leases import Lease
from agentfleet.ingest.shards import ShardSet, Stats
from agentfleet.ops.metrics import Metrics
from agentfleet.spec.settings import Settings
from tests.runtime.support import TEST_AGENTS

RECORD = b'{"spec_version": "1.0", "id": "e1", "type": "rare.event", "subject": "s", "time": "2025-01-01T00:00:00Z",' \
         b' "source": "t", "payload": {}}'


def _shard_set() -> tuple[ShardSet, Scheduler]:
    settings = Settings(stream_name="s", agents=TEST_AGENTS)
    scheduler = Scheduler(8)
    leases: Any = SimpleNamespace(shards={})
    return ShardSet(settings, object(), leases, scheduler, audit=object(),  # type: ignore[arg-type]
                    metrics=Metrics("t", "off", stream=io.StringIO()), stats=Stats()), scheduler


def _read(shards: ShardSet, seq: str) -> list[WorkItem]:
    reader = shards.readers["shard-1"]
    shards._accept(reader, {"SequenceNumber": seq, "Data": RECORD})
    taken = []
    while (item := shards.scheduler.take()[1]) is not None:
        taken.append(item)
        shards.scheduler.returned(item)
        shards.scheduler.release(item)
    return taken


def test_an_item_of_a_lost_lease_does_not_acknowledge_the_retaken_lease() -> None:
    shards, _ = _shard_set()
    shards.apply(Changes(acquired=[Lease("shard-1", "me", counter=1)]))
    (old_item,) = _read(shards, "5")  # a sender holds this item ...
    assert old_item.generation == 1
    shards.apply(Changes(lost=["shard-1"]))  # ... while renewals fail and the lease is lost,
    shards.apply(Changes(acquired=[Lease("shard-1", "me", counter=3)]))  # then taken again
    (new_item,) = _read(shards, "5")  # the new reader re-reads record 5
    reader = shards.readers["shard-1"]

    shards.done(old_item)  # the old item finishes late
    assert reader.checkpointable() is None, "the new reader's record 5 is not acknowledged by the old item"
    shards.done(new_item)
    assert reader.checkpointable() == "5"
