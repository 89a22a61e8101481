"""Reading one shard and knowing how far it is safe to checkpoint.

A record is "pending" from the moment it is read until every work item made from it
(one per subscribed agent, or a quarantine write) is handled. The checkpoint only ever
advances over a fully handled prefix, so a crash loses nothing: the next owner starts
after the last checkpoint and re-reads whatever was in flight (at-least-once; actions
stay exactly-once through the decision id).
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from agentfleet.ingest.leases import SHARD_END
from agentfleet.ops import logs

log = logs.get(__name__)
_ERROR_BACKOFF_SECONDS = 1.0
# GetRecords limits, from its documentation in botocore/data/kinesis/2013-12-02/service-2.json
# (botocore 1.44.8): 5 calls per second per shard; each shard reads at most 2 MiB per second; a
# call that returned 10 MiB makes calls in the next 5 seconds fail with
# ProvisionedThroughputExceededException, and the API reference recommends waiting 1 second
# after that exception. So calls are at least 0.2 s apart, a read of B bytes waits B / 2 MiB
# seconds (10 MiB -> 5 s) before the next, and throttling backs off from 1 s with full jitter.
MIN_CALL_INTERVAL = 0.2
READ_BYTES_PER_SECOND = 2 * 1024 * 1024
_THROTTLE_BASE, _THROTTLE_CAP = 1.0, 10.0


def _seq(value: str) -> int:
    return int(value) if value else 0


def _is_throttled(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in (
        "ProvisionedThroughputExceededException", "ThrottlingException", "LimitExceededException")


class ShardReader:
    """GetRecords loop state for one leased shard, plus its pending-record ledger."""

    def __init__(self, kinesis: Any, stream_name: str, shard_id: str, *, checkpoint: str, poll_interval: float,
                 limit: int, max_pending: int, monotonic: Callable[[], float] = time.monotonic,
                 generation: int = 0) -> None:
        self._kinesis, self.stream_name, self.shard_id = kinesis, stream_name, shard_id
        self.generation = generation  # the lease counter when taken (see ingest/shards.py)
        self.checkpointed = checkpoint  # last sequence number written to the lease table
        self.position = checkpoint  # last sequence number read
        self.poll_interval, self.limit, self.max_pending, self._monotonic = poll_interval, limit, max_pending, monotonic
        self.ending_sequence: str | None = None
        self.iterator: str | None = None
        self.pending: OrderedDict[str, int] = OrderedDict()
        self.closing = False  # giving the shard up: read nothing more
        self.ended = False  # a closed shard read to its end
        self.millis_behind = 0
        self.unread_estimate = 0
        self._next_poll = 0.0
        self._uncommitted: str | None = None
        self.throttled = 0  # consecutive ProvisionedThroughputExceeded answers
        self._rand: Callable[[], float] = random.random

    def due(self) -> bool:
        return (not self.closing and not self.ended and len(self.pending) < self.max_pending
                and self._monotonic() >= self._next_poll)

    def _new_iterator(self) -> str:
        kwargs: dict[str, Any] = {"StreamName": self.stream_name, "ShardId": self.shard_id}
        if self.position:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=self.position)
        else:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        return str(self._kinesis.get_shard_iterator(**kwargs)["ShardIterator"])

    def poll(self, limit: int | None = None) -> list[dict[str, Any]]:
        """One GetRecords call of at most `limit` (default self.limit) records; errors back off and return []."""
        # Limit is 1..10000 (shape GetRecordsInputLimit, botocore 1.44.8 kinesis service-2.json).
        limit = self.limit if limit is None else max(1, min(limit, self.limit))
        now = self._monotonic()
        self._next_poll = now + max(MIN_CALL_INTERVAL, self.poll_interval)
        try:
            if self.iterator is None:
                self.iterator = self._new_iterator()
            response = self._kinesis.get_records(ShardIterator=self.iterator, Limit=limit)
        except self._kinesis.exceptions.ExpiredIteratorException:
            self.iterator = None  # re-open after the last record read, on the next poll
            return []
        except Exception as exc:
            if _is_throttled(exc):  # the iterator is still good: keep it, wait longer each time
                self.throttled += 1
                wait = self._rand() * min(_THROTTLE_CAP, _THROTTLE_BASE * 2 ** (self.throttled - 1))
                self._next_poll = now + max(MIN_CALL_INTERVAL, wait)
                log.info("get_records throttled", extra={"shard_id": self.shard_id, "wait_s": round(wait, 2)})
                return []
            log.warning("get_records failed",
                        extra={"shard_id": self.shard_id, "error": f"{type(exc).__name__}: {exc}"})
            self.iterator = None
            self._next_poll = now + _ERROR_BACKOFF_SECONDS
            return []
        self.throttled = 0
        records: list[dict[str, Any]] = response.get("Records", [])
        self.iterator = response.get("NextShardIterator")
        self.millis_behind = int(response.get("MillisBehindLatest", 0) or 0)
        self.unread_estimate = self._estimate_unread(records)
        size = sum(len(record["Data"]) for record in records)
        if records:
            self.position = records[-1]["SequenceNumber"]
            if len(records) >= limit:
                # More is waiting: do not sleep a whole poll interval, only what the limits ask.
                self._next_poll = now + MIN_CALL_INTERVAL
        self._next_poll = max(self._next_poll, now + size / READ_BYTES_PER_SECOND)
        # Real Kinesis ends a closed shard with a null iterator; the emulator never does, so
        # "closed, and an empty read at or past its ending sequence number" is the end too.
        if self.iterator is None or (not records and self.ending_sequence is not None
                                     and _seq(self.position) >= _seq(self.ending_sequence)):
            self.ended = True
            log.info("shard read to its end", extra={"shard_id": self.shard_id, "position": self.position})
        return records

    def _estimate_unread(self, records: list[dict[str, Any]]) -> int:
        """Records not yet read, from MillisBehindLatest and the arrival rate seen in this page."""
        if self.millis_behind <= 0:
            return 0
        if len(records) > 1:
            span = (records[-1]["ApproximateArrivalTimestamp"] - records[0]["ApproximateArrivalTimestamp"])
            span_ms = span.total_seconds() * 1000
            if span_ms > 0:
                return round((len(records) - 1) / span_ms * self.millis_behind)
        return max(len(records), 1)

    def add(self, sequence_number: str, work_items: int) -> None:
        self.pending[sequence_number] = work_items

    def done(self, sequence_number: str) -> None:
        if sequence_number in self.pending:
            self.pending[sequence_number] -= 1

    def checkpointable(self) -> str | None:
        """The sequence number to checkpoint now (the end of the handled prefix), or None.

        Handled records leave the ledger here; until `committed` confirms the write, the
        same (or a later) value is offered again, so a failed write is simply retried.
        """
        while self.pending:
            seq, remaining = next(iter(self.pending.items()))
            if remaining > 0:
                break
            self.pending.popitem(last=False)
            self._uncommitted = seq
        if self.ended and not self.pending:
            return SHARD_END if self.checkpointed != SHARD_END else None
        return self._uncommitted

    def committed(self, sequence_number: str) -> None:
        self.checkpointed = sequence_number
        if self._uncommitted == sequence_number or sequence_number == SHARD_END:
            self._uncommitted = None

    def backlog(self) -> int:
        return len(self.pending) + self.unread_estimate
