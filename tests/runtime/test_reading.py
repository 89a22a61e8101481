"""GetRecords pacing (issue 12, runtime item 8): at most 5 calls/s/shard even while behind,
ProvisionedThroughputExceeded backs off with jitter and keeps the iterator, and a large read
waits as long as the shard's 2 MiB/s read limit asks (10 MiB -> 5 s)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.exceptions import ClientError

from agentfleet.ingest.consumer import MIN_CALL_INTERVAL, ShardReader

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


class Exceptions:
    class ExpiredIteratorException(Exception):
        pass


class FakeKinesis:
    """Answers GetRecords from a script; records which iterator each call used."""

    exceptions = Exceptions

    def __init__(self, answers: list[Any]) -> None:
        self.answers, self.iterators_used, self.opened = answers, [], 0

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, str]:
        self.opened += 1
        return {"ShardIterator": f"it-{self.opened}"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        self.iterators_used.append(ShardIterator)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _page(count: int, size: int, start: int = 1) -> dict[str, Any]:
    records = [{"SequenceNumber": str(start + i), "Data": b"x" * size, "ApproximateArrivalTimestamp": T0}
               for i in range(count)]
    return {"Records": records, "NextShardIterator": f"next-{start}", "MillisBehindLatest": 5000}


def _reader(kinesis: FakeKinesis, clock: list[float], limit: int = 10) -> ShardReader:
    return ShardReader(kinesis, "s", "shard-1", checkpoint="", poll_interval=0.0, limit=limit, max_pending=10_000,
                       monotonic=lambda: clock[0])


def _calls_in_one_second(reader: ShardReader, clock: list[float]) -> int:
    calls, start = 0, clock[0]
    while clock[0] < start + 1.0:
        if reader.due():
            reader.poll()
            calls += 1
        clock[0] += 0.01
    return calls


def test_full_pages_never_exceed_five_calls_per_second() -> None:
    clock = [0.0]
    kinesis = FakeKinesis([_page(10, 10, start=10 * i) for i in range(50)])
    assert _calls_in_one_second(_reader(kinesis, clock), clock) <= 1 / MIN_CALL_INTERVAL


def test_throttling_backs_off_with_jitter_and_keeps_the_iterator() -> None:
    clock = [0.0]
    throttled = ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"},
                             "ResponseMetadata": {"HTTPStatusCode": 400}}, "GetRecords")
    kinesis = FakeKinesis([_page(1, 10), throttled, throttled, _page(1, 10, start=2)])
    reader = _reader(kinesis, clock)
    reader._rand = lambda: 1.0  # the top of the jitter range, so the waits are exact
    reader.poll()
    clock[0] += 1.0
    reader.poll()
    assert not reader.due() and reader._next_poll - clock[0] == 1.0, "first throttle waits up to 1 s"
    clock[0] += 1.0
    reader.poll()
    assert reader._next_poll - clock[0] == 2.0, "then up to 2 s"
    clock[0] += 2.0
    assert [r["SequenceNumber"] for r in reader.poll()] == ["2"]
    assert kinesis.opened == 1 and kinesis.iterators_used == ["it-1", "next-1", "next-1", "next-1"]


def test_a_large_read_waits_as_the_shard_read_limit_asks() -> None:
    clock = [0.0]
    kinesis = FakeKinesis([_page(10, 1024 * 1024), _page(1, 10, start=11)])  # 10 MiB in one call
    reader = _reader(kinesis, clock)
    reader.poll()
    clock[0] += 4.9
    assert not reader.due(), "calls within 5 s of a 10 MiB read would be refused"
    clock[0] += 0.2
    assert reader.due()
