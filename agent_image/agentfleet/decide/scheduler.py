"""Which work item goes to the model next: continuous in-flight scheduling.

Up to `window` requests (the backend's slots: replicas x max_num_seqs) are in the model at
once; as one returns, the next eligible item is handed out, so the model never idles between
batches. An item is eligible when it is the oldest queued item of its (agent, subject) and that
pair has nothing in flight or finishing: a later event of a pair is sent only after the earlier
one's memory is written, because its prompt must see it. Among eligible items, higher agent
`priority` goes first, then the item read first. An eligible item older than its agent's
`shed_after_seconds` (> 0) is not sent but handed back as shed (recorded as a `shed` decision).
Thread-safe: the main loop adds and requeues, sender threads take, finish threads release.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agentfleet.spec.catalog import AgentSpec
from agentfleet.spec.events import Event

_IDLE_WAIT = 1.0  # a waiting sender re-checks at least this often (closing, delayed retries)


@dataclass
class WorkItem:
    """One (record [, KPL sub-record], subscribed agent) pair: becomes exactly one decision.

    `generation` is the lease counter of the reader that made it: an item that outlives a lost and
    retaken lease must not acknowledge the new reader's records (ingest/shards.py ShardSet.done).
    `raw` is the record's bytes as read, kept whole if the item ends as a permanent failure.
    `enqueued` is when it was read (monotonic): queue time and shedding age count from there.
    """

    shard_id: str
    sequence_number: str
    event: Event
    agent: AgentSpec
    decision_id: str
    enqueued: float
    attempts: int = 0
    not_before: float = 0.0
    sub_sequence: int | None = None  # KPL sub-sequence number; None for a record not aggregated
    generation: int = 0
    raw: bytes = b""
    partition_key: str = ""  # the record's (or KPL user record's), for putting it back on the stream
    sent: float = 0.0  # monotonic time it was handed to a sender (0 = not yet)

    @property
    def key(self) -> tuple[str, str]:
        return self.agent.name, self.event.subject


def read_ahead(window: int) -> int:
    """Unsent items a worker may hold beyond its window: half a window, at least 8."""
    return max(8, window // 2)


class Scheduler:
    """Queue of unsent items, the pairs in flight, and the count of requests in the model."""

    def __init__(self, window: int, *, queue_limit: int | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if window < 1:
            raise ValueError(f"the in-flight window must be at least 1, got {window}")
        self.window = window
        self.queue_limit = read_ahead(window) if queue_limit is None else queue_limit
        self._monotonic = monotonic
        self._queue: list[WorkItem] = []
        self._busy: set[tuple[str, str]] = set()  # pairs with an item sending or finishing
        self._busy_shards: dict[str, int] = {}
        self.sending = 0  # items taken and not yet returned from the model
        self.closed = False
        self._cond = threading.Condition()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    def room(self) -> int:
        """How many more items the worker may read: window + read-ahead, less unsent and sending items."""
        with self._cond:
            return self.window + self.queue_limit - len(self._queue) - self.sending

    def add(self, item: WorkItem) -> None:
        with self._cond:
            self._queue.append(item)
            self._cond.notify()

    def requeue(self, item: WorkItem, delay: float) -> None:
        """Put a failed item back in front of its pair (order kept), not eligible for `delay` seconds."""
        with self._cond:
            item.attempts += 1
            item.not_before = self._monotonic() + delay
            self._queue.insert(0, item)
            self._unbusy(item)
            self._cond.notify()

    def release(self, item: WorkItem) -> None:
        """The item is finished (or given up): its pair may send its next item."""
        with self._cond:
            self._unbusy(item)
            self._cond.notify()

    def returned(self, item: WorkItem) -> None:
        """The model answered (or failed) for `item`: its slot is free; its pair stays busy until release."""
        with self._cond:
            self.sending -= 1
            self._cond.notify()

    def active(self) -> int:
        """Items taken and not yet released or requeued (sending, finishing or waiting to be retried)."""
        with self._cond:
            return len(self._busy)

    def busy_shards(self) -> set[str]:
        with self._cond:
            return set(self._busy_shards)

    def drop_shard(self, shard_id: str) -> int:
        """Forget queued items of a shard this worker no longer owns (the next owner re-reads them)."""
        with self._cond:
            before = len(self._queue)
            self._queue = [item for item in self._queue if item.shard_id != shard_id]
            return before - len(self._queue)

    def close(self) -> int:
        """Hand out nothing more (drain); returns how many queued items were dropped unacknowledged."""
        with self._cond:
            self.closed, dropped, self._queue = True, len(self._queue), []
            self._cond.notify_all()
            return dropped

    def take(self) -> tuple[list[WorkItem], WorkItem | None]:
        """Without waiting: (items to shed now, the item to send next or None)."""
        with self._cond:
            return self._take()

    def next(self, timeout: float) -> tuple[list[WorkItem], WorkItem | None]:
        """Wait up to `timeout` for an item to send (a free slot and an eligible item); shed ones come too."""
        end = self._monotonic() + timeout
        with self._cond:
            while True:
                shed, item = self._take()
                left = end - self._monotonic()
                if shed or item is not None or self.closed or left <= 0:
                    return shed, item
                self._cond.wait(min(left, self._soonest_wait()))

    def _take(self) -> tuple[list[WorkItem], WorkItem | None]:
        if self.closed:
            return [], None
        now = self._monotonic()
        eligible: list[WorkItem] = []
        seen: set[tuple[str, str]] = set()
        for item in self._queue:
            if item.key in seen or item.key in self._busy:
                continue
            seen.add(item.key)  # later items of this pair wait for this one
            if item.not_before <= now:
                eligible.append(item)
        shed = [i for i in eligible if _aged(i, now)]
        chosen = None
        if self.sending < self.window:
            rest = [i for i in eligible if not _aged(i, now)]
            chosen = min(rest, key=lambda i: (-i.agent.priority, i.enqueued), default=None)
        taken = [*shed, *([chosen] if chosen else [])]
        if taken:
            ids = {id(i) for i in taken}
            self._queue = [i for i in self._queue if id(i) not in ids]
        for item in taken:
            self._busy.add(item.key)
            self._busy_shards[item.shard_id] = self._busy_shards.get(item.shard_id, 0) + 1
        if chosen is not None:
            self.sending += 1
            chosen.sent = now
        return shed, chosen

    def _soonest_wait(self) -> float:
        delayed = [i.not_before for i in self._queue if i.not_before > self._monotonic()]
        return max(0.001, min(delayed) - self._monotonic()) if delayed else _IDLE_WAIT

    def _unbusy(self, item: WorkItem) -> None:
        self._busy.discard(item.key)
        left = self._busy_shards.get(item.shard_id, 0) - 1
        if left > 0:
            self._busy_shards[item.shard_id] = left
        else:
            self._busy_shards.pop(item.shard_id, None)


def _aged(item: WorkItem, now: float) -> bool:
    """Older than its agent's shed_after_seconds (0 = the agent never sheds)."""
    limit = item.agent.shed_after_seconds
    return 0 < limit <= now - item.enqueued
