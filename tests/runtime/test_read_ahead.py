"""Bounded read-ahead (issue 11): a worker reads no more records than its scheduler has room for."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

from agentfleet.decide.scheduler import Scheduler
from agentfleet.ingest.coordinator import Changes
from agentfleet.ingest.leases import Lease
from agentfleet.ingest.shards import ShardSet, Stats
from agentfleet.ops.metrics import Metrics
from agentfleet.spec.settings import Settings
from tests.runtime.support import TEST_AGENTS

# "rare.event" has one subscriber (the "limited" test agent): one record, one work item.
RECORD = b'{"spec_version": "1.0", "id": "e%d", "type": "rare.event", "subject": "s%d", ' \
         b'"time": "2025-01-01T00:00:00Z", "source": "t", "payload": {}}'


class EndlessShard:
    """GetRecords on a shard that always has more: answers `Limit` records and remembers each Limit."""

    exceptions = SimpleNamespace(ExpiredIteratorException=type("ExpiredIteratorException", (Exception,), {}))

    def __init__(self) -> None:
        self.limits: list[int] = []
        self.next = 1

    def get_shard_iterator(self, **_: Any) -> dict[str, str]:
        return {"ShardIterator": "it"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        self.limits.append(Limit)
        records = [{"SequenceNumber": str(n), "Data": RECORD % (n, n)} for n in range(self.next, self.next + Limit)]
        self.next += Limit
        return {"Records": records, "NextShardIterator": "it", "MillisBehindLatest": 0}


def test_reading_stops_at_the_window_plus_queue_and_resumes_with_the_room_freed() -> None:
    kinesis, scheduler = EndlessShard(), Scheduler(2, queue_limit=3)
    leases: Any = SimpleNamespace(shards={}, valid=lambda shard_id: True)
    shards = ShardSet(Settings(stream_name="s", agents=TEST_AGENTS), kinesis, leases, scheduler,
                      audit=object(), metrics=Metrics("t", "off", stream=io.StringIO()),  # type: ignore[arg-type]
                      stats=Stats())
    shards.apply(Changes(acquired=[Lease("shard-1", "me", counter=1)]))
    reader = shards.readers["shard-1"]

    shards.poll()
    assert kinesis.limits == [5] and len(scheduler) == 5 and scheduler.room() == 0
    reader._next_poll = 0.0  # due again at once
    shards.poll()
    assert kinesis.limits == [5], "no room: the shard is not read"
    sent = [scheduler.take()[1] for _ in range(2)]
    for item in sent:
        assert item is not None
        scheduler.returned(item)  # their model calls returned: two read-ahead places are free again
    shards.poll()
    assert kinesis.limits == [5, 2] and len(scheduler) == 5
    assert [len(reader.pending), shards.stats.records] == [7, 7], "reading paused; records stay pending"


def test_shards_due_together_share_the_room() -> None:
    kinesis, scheduler = EndlessShard(), Scheduler(2, queue_limit=4)
    leases: Any = SimpleNamespace(shards={}, valid=lambda shard_id: True)
    shards = ShardSet(Settings(stream_name="s", agents=TEST_AGENTS), kinesis, leases, scheduler,
                      audit=object(), metrics=Metrics("t", "off", stream=io.StringIO()),  # type: ignore[arg-type]
                      stats=Stats())
    shards.apply(Changes(acquired=[Lease("shard-1", "me", counter=1), Lease("shard-2", "me", counter=1)]))
    shards.poll()
    assert kinesis.limits == [3, 3], "the first shard does not take the whole room"
