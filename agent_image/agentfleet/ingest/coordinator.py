"""Which shards this worker reads: shard discovery, lease renewal, acquisition and balancing.

Runs in the worker's main loop every `lease_seconds / 3`. Balancing is deliberately gentle:
fair share = ceil(active shards / live workers), where live workers are distinct owners of
unexpired leases, unexpired worker heartbeats, and this worker. A worker above its share
gives up one shard per tick (the loop checkpoints it first); one below takes free or
expired leases. A child shard (after a split or merge) becomes active only when every
parent is finished (closed and checkpointed to SHARD_END), so per-subject order holds.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentfleet.ingest.leases import Lease, LeaseTable
from agentfleet.ops import logs

log = logs.get(__name__)
_DEAD_WORKER_MS = 3_600_000


@dataclass(frozen=True)
class ShardInfo:
    shard_id: str
    parents: tuple[str, ...]
    ending_sequence: str | None  # set once the shard is closed (split, merged)


@dataclass(frozen=True)
class Plan:
    take: list[Lease]
    give_up: list[str]
    fair_share: int
    live_workers: int


def active_leases(leases: list[Lease], shards: dict[str, ShardInfo]) -> list[Lease]:
    """Leases that may be processed now: unfinished, still in the stream, and every parent finished."""
    rows = {lease.shard_id: lease for lease in leases}

    def parent_done(parent: str) -> bool:
        if parent in rows:
            return rows[parent].finished
        return parent not in shards  # gone from the stream (past retention): nothing left to read

    return [lease for lease in leases if not lease.finished and lease.shard_id in shards
            and all(parent_done(p) for p in lease.parents)]


def plan(leases: list[Lease], workers: dict[str, int], shards: dict[str, ShardInfo], *, me: str, held: set[str],
         now_ms: int, shuffle: Callable[[list[Lease]], None] = random.shuffle) -> Plan:
    """Pure balancing decision (tested without AWS)."""
    active = active_leases(leases, shards)
    live = {lease.owner for lease in leases if lease.held(now_ms)}
    live |= {worker for worker, expires in workers.items() if expires > now_ms}
    live.add(me)
    fair = math.ceil(len(active) / len(live)) if active else 0
    mine = sorted(lease.shard_id for lease in active if lease.shard_id in held)
    if len(mine) > fair:
        return Plan([], [mine[-1]], fair, len(live))
    free = [lease for lease in active if lease.shard_id not in held and not lease.held(now_ms)]
    shuffle(free)  # workers starting together should not all race for the same shard
    return Plan(free[: max(0, fair - len(mine))], [], fair, len(live))


@dataclass
class Changes:
    acquired: list[Lease] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    give_up: list[str] = field(default_factory=list)


class LeaseCoordinator:
    """Keeps `held` (shard id -> lease) and `shards` (the stream's shards) current."""

    def __init__(self, table: LeaseTable, kinesis: Any, stream_name: str, me: str, *, lease_seconds: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.table, self._kinesis, self.stream_name, self.me = table, kinesis, stream_name, me
        self.lease_seconds, self._monotonic = lease_seconds, monotonic
        self.interval = max(0.2, lease_seconds / 3.0)
        self.held: dict[str, Lease] = {}
        self._valid_until: dict[str, float] = {}  # local safety: stop reading if renewals keep failing
        self.shards: dict[str, ShardInfo] = {}
        self._next_tick = 0.0

    def list_shards(self) -> dict[str, ShardInfo]:
        shards = {}
        for page in self._kinesis.get_paginator("list_shards").paginate(StreamName=self.stream_name):
            for shard in page.get("Shards", []):
                parents = tuple(p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p)
                ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
                shards[shard["ShardId"]] = ShardInfo(shard["ShardId"], parents, ending)
        return shards

    def valid(self, shard_id: str) -> bool:
        return shard_id in self.held and self._valid_until.get(shard_id, 0.0) > self._monotonic()

    def due(self) -> bool:
        return self._monotonic() >= self._next_tick

    def tick(self, *, taking: bool) -> Changes:
        """Renew, then (when `taking`) discover shards and balance. Errors are logged; the next tick retries."""
        self._next_tick = self._monotonic() + self.interval
        changes = Changes()
        for shard_id in list(self.held):
            started = self._monotonic()
            try:
                ok = self.table.renew(shard_id, self.me)
            except Exception as exc:
                log.warning("lease renew failed", extra={"shard_id": shard_id, "error": str(exc)})
                ok = self._valid_until.get(shard_id, 0.0) > self._monotonic()
            else:
                if ok:
                    self._valid_until[shard_id] = started + self.lease_seconds
            if not ok:
                log.warning("lease lost", extra={"shard_id": shard_id})
                self._forget(shard_id)
                changes.lost.append(shard_id)
        if not taking:
            return changes
        try:
            self.table.heartbeat(self.me)
            self.shards = self.list_shards()
            leases, workers = self.table.scan()
            known = {lease.shard_id for lease in leases}
            for info in self.shards.values():
                if info.shard_id not in known:
                    self.table.ensure(info.shard_id, info.parents)
            for lease in leases:
                if lease.finished and lease.shard_id not in self.shards:
                    self.table.delete_finished(lease.shard_id)
            now_ms = self.table.now_ms()
            for worker, expires in workers.items():
                if expires < now_ms - _DEAD_WORKER_MS:  # crashed long ago: keep the table small
                    self.table.forget_worker(worker, expires)
            if known != set(self.shards):
                leases, workers = self.table.scan()
            decision = plan(leases, workers, self.shards, me=self.me, held=set(self.held), now_ms=self.table.now_ms())
            changes.give_up = decision.give_up
            for lease in decision.take:
                started = self._monotonic()
                taken = self.table.take(lease, self.me)
                if taken is not None:
                    self.held[taken.shard_id] = taken
                    self._valid_until[taken.shard_id] = started + self.lease_seconds
                    changes.acquired.append(taken)
            if changes.acquired or changes.give_up:
                log.info("leases balanced", extra={"held": sorted(self.held), "fair_share": decision.fair_share,
                                                   "live_workers": decision.live_workers,
                                                   "give_up": decision.give_up})
        except Exception as exc:
            log.warning("lease balancing failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        return changes

    def checkpoint(self, shard_id: str, sequence_number: str) -> bool:
        """False when the lease is gone (another worker took it); the caller then drops the shard."""
        if shard_id not in self.held:
            return False
        ok = self.table.checkpoint(shard_id, self.me, sequence_number)
        if not ok:
            log.warning("checkpoint refused: lease lost", extra={"shard_id": shard_id})
            self._forget(shard_id)
        return ok

    def release(self, shard_id: str) -> None:
        if shard_id in self.held:
            try:
                self.table.release(shard_id, self.me)
                log.info("lease released", extra={"shard_id": shard_id})
            except Exception as exc:
                log.warning("lease release failed; it will expire", extra={"shard_id": shard_id, "error": str(exc)})
            self._forget(shard_id)

    def release_all(self) -> None:
        for shard_id in list(self.held):
            self.release(shard_id)
        try:
            self.table.forget_worker(self.me)
        except Exception as exc:
            log.warning("worker heartbeat delete failed", extra={"error": str(exc)})

    def _forget(self, shard_id: str) -> None:
        self.held.pop(shard_id, None)
        self._valid_until.pop(shard_id, None)
