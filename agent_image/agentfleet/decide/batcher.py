"""Batching prompts across agents and shards into one model call.

A batch goes out when `batch_size` items are waiting or the oldest has waited
`max_wait` (so a lone event is not starved). Two items for the same agent and subject
never share a batch, and a later one never overtakes an earlier one: each decision's
prompt must see the memory its predecessor wrote.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from agentfleet.spec.catalog import AgentSpec
from agentfleet.spec.events import Event


@dataclass
class WorkItem:
    """One (record [, KPL sub-record], subscribed agent) pair: becomes exactly one decision.

    `generation` is the lease counter of the reader that made it: a batch that outlives a lost and
    retaken lease must not acknowledge the new reader's records (ingest/shards.py ShardSet.done).
    `raw` is the record's bytes as read, kept whole if the item ends as a permanent failure.
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

    @property
    def key(self) -> tuple[str, str]:
        return self.agent.name, self.event.subject


class Batcher:
    """FIFO of work items with per-(agent, subject) ordering; not thread-safe (main loop only)."""

    def __init__(self, batch_size: int, max_wait_seconds: float, monotonic: Callable[[], float] = time.monotonic):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size, self.max_wait, self._monotonic = batch_size, max_wait_seconds, monotonic
        self._queue: list[WorkItem] = []

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, item: WorkItem) -> None:
        self._queue.append(item)

    def requeue(self, items: list[WorkItem], delay: float) -> None:
        """Put failed items back at the front (their order kept), not eligible for `delay` seconds."""
        not_before = self._monotonic() + delay
        for item in items:
            item.attempts += 1
            item.not_before = not_before
        self._queue[:0] = items

    def _select(self) -> list[WorkItem]:
        now = self._monotonic()
        chosen: list[WorkItem] = []
        blocked: set[tuple[str, str]] = set()
        for item in self._queue:
            if item.key in blocked:
                continue
            blocked.add(item.key)  # later items with this key wait for this one
            if item.not_before <= now:
                chosen.append(item)
                if len(chosen) == self.batch_size:
                    break
        return chosen

    def ready(self) -> bool:
        chosen = self._select()
        if len(chosen) >= self.batch_size:
            return True
        return bool(chosen) and self._monotonic() - min(i.enqueued for i in chosen) >= self.max_wait

    def seconds_until_ready(self) -> float:
        """How long the loop may sleep before a partial batch is due (0 when ready, max_wait when empty)."""
        chosen = self._select()
        if len(chosen) >= self.batch_size:
            return 0.0
        if not chosen:
            return self.max_wait
        return max(0.0, min(i.enqueued for i in chosen) + self.max_wait - self._monotonic())

    def take(self) -> list[WorkItem]:
        chosen = self._select()
        taken = {id(item) for item in chosen}
        self._queue = [item for item in self._queue if id(item) not in taken]
        return chosen

    def drop_shard(self, shard_id: str) -> int:
        """Forget queued items of a shard this worker no longer owns (the next owner re-reads them)."""
        before = len(self._queue)
        self._queue = [item for item in self._queue if item.shard_id != shard_id]
        return before - len(self._queue)

    def clear(self) -> int:
        dropped = len(self._queue)
        self._queue = []
        return dropped
