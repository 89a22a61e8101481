"""Lease and heartbeat expiry judged on this host's monotonic clock, never by comparing wall clocks.

Each row (a shard lease or a worker heartbeat) has a counter its owner raises on every renew
or beat. Like the Kinesis Client Library's lease taker, this worker remembers, per row, the
counter it last saw and when (its own `time.monotonic()`) that counter last changed; a row
whose counter stood still for longer than the lease duration is expired. A row seen for the
first time counts as just renewed if it has an owner, and as never renewed if it has none.
Source: awslabs/amazon-kinesis-client, amazon-kinesis-client/src/main/java/software/amazon/
kinesis/leases/dynamodb/DynamoDBLeaseTaker.java (updateAllLeases) and leases/Lease.java
(isExpired), commit 024eb86e. Two hosts whose wall clocks disagree by minutes therefore agree
on expiry to within one scan interval.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Seen:
    counter: int
    changed_at: float | None  # monotonic seconds; None = never renewed (unowned when first seen)


class CounterClock:
    """Remembers when each row's counter last moved, on the caller's monotonic clock."""

    def __init__(self, duration_seconds: float) -> None:
        self.duration = duration_seconds
        self._seen: dict[str, _Seen] = {}

    def observe(self, key: str, counter: int, *, owned: bool, now: float) -> None:
        seen = self._seen.get(key)
        if seen is None:
            self._seen[key] = _Seen(counter, now if owned else None)
        elif seen.counter != counter:
            seen.counter, seen.changed_at = counter, now

    def still_for(self, key: str, now: float) -> float | None:
        """Seconds since the counter last moved; None if never seen moving (or never seen)."""
        seen = self._seen.get(key)
        if seen is None or seen.changed_at is None:
            return None
        return now - seen.changed_at

    def alive(self, key: str, now: float) -> bool:
        still = self.still_for(key, now)
        return still is not None and still <= self.duration

    def forget_missing(self, keys: set[str]) -> None:
        """Drop rows no longer in the table (deleted), so a re-created row starts afresh."""
        for key in set(self._seen) - keys:
            del self._seen[key]
