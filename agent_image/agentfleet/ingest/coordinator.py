"""Which shards this worker reads: shard discovery, lease renewal, acquisition and balancing.

Runs in the worker's main loop every `lease_seconds / 3`. Balancing is deliberately gentle:
fair share = ceil(active shards / live workers), where live workers are distinct owners of
live leases, workers whose heartbeat counter moved within a lease duration, and this worker
(liveness is judged on this host's monotonic clock: ingest/expiry.py). A worker above its
share gives up one shard per tick (the loop checkpoints it first); one below takes free or
expired leases. A child shard (after a split or merge) becomes active only when every parent
is finished (closed and checkpointed to SHARD_END) or has left the stream: after a complete
ListShards, a lease whose shard is no longer listed has aged out of the retention period, so
it counts as finished, is deleted, and a reader of it stops. Per-subject order holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from agentfleet.ingest.balance import ShardInfo, active_leases, list_shards, plan
from agentfleet.ingest.expiry import CounterClock
from agentfleet.ingest.leases import WORKER_PREFIX, Lease, LeaseTable
from agentfleet.ops import logs

log = logs.get(__name__)
_DEAD_WORKER_SECONDS = 3600.0
__all__ = ["Changes", "LeaseCoordinator", "ShardInfo", "active_leases", "list_shards", "plan"]


@dataclass
class Changes:
    acquired: list[Lease] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    give_up: list[str] = field(default_factory=list)


class LeaseCoordinator:
    """Keeps `held` (shard id -> lease) and `shards` (the stream's shards) current.

    `balance_failures` counts consecutive ticks whose discovery/balancing failed (0 after one
    succeeds); the worker turns unhealthy past a threshold (entrypoints/worker.py).
    """

    def __init__(self, table: LeaseTable, kinesis: Any, stream_name: str, me: str, *, lease_seconds: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.table, self._kinesis, self.stream_name, self.me = table, kinesis, stream_name, me
        self.lease_seconds, self._monotonic = lease_seconds, monotonic
        self.interval = max(0.2, lease_seconds / 3.0)
        self.held: dict[str, Lease] = {}
        self._valid_until: dict[str, float] = {}  # local safety: stop reading if renewals keep failing
        self.shards: dict[str, ShardInfo] = {}
        self._next_tick = 0.0
        self._clock = CounterClock(lease_seconds)
        self.balance_failures = 0

    def list_shards(self) -> dict[str, ShardInfo]:
        return list_shards(self._kinesis, self.stream_name)

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
            self._balance(changes)
            self.balance_failures = 0
        except Exception as exc:
            self.balance_failures += 1
            log.warning("lease balancing failed", extra={"error": f"{type(exc).__name__}: {exc}",
                                                         "consecutive_failures": self.balance_failures})
        return changes

    def _try(self, what: str, fn: Callable[[], Any]) -> Any:
        """One optional step of a tick: a failure is logged and skipped (the next tick tries again)."""
        try:
            return fn()
        except Exception as exc:
            log.warning("lease step failed", extra={"what": what, "error": f"{type(exc).__name__}: {exc}"})
            return None

    def _balance(self, changes: Changes) -> None:
        """Only ListShards and the lease scan are essential (a failure there fails the tick); every
        other call is one attempt that may fail alone, so a flaky DynamoDB slows balancing, not stops it."""
        self._try("heartbeat", lambda: self.table.heartbeat(self.me))
        self.shards = self.list_shards()  # complete, or it raised
        leases, workers = self.table.scan()
        now = self._monotonic()
        for lease in leases:
            if lease.shard_id not in self.shards:  # aged out of the stream (see module doc)
                self._try("lease delete", partial(self.table.delete_gone, lease.shard_id, lease.counter))
                if lease.shard_id in self.held:
                    log.info("shard left the stream", extra={"shard_id": lease.shard_id})
                    self._forget(lease.shard_id)
                    changes.lost.append(lease.shard_id)
        known = {lease.shard_id for lease in leases}
        for info in self.shards.values():
            if info.shard_id not in known:
                self._try("lease create", partial(self.table.ensure, info.shard_id, info.parents))
        if known != set(self.shards):
            leases, workers = self.table.scan()
            now = self._monotonic()
        leases = [lease for lease in leases if lease.shard_id in self.shards]
        for lease in leases:
            self._clock.observe(lease.shard_id, lease.counter, owned=bool(lease.owner), now=now)
        for worker, counter in workers.items():
            self._clock.observe(WORKER_PREFIX + worker, counter, owned=True, now=now)
            still = self._clock.still_for(WORKER_PREFIX + worker, now)
            if worker != self.me and still is not None and still > _DEAD_WORKER_SECONDS:
                # crashed long ago: keep the table small
                self._try("worker forget", partial(self.table.forget_worker, worker, counter))
        self._clock.forget_missing({lease.shard_id for lease in leases} | {WORKER_PREFIX + w for w in workers})
        alive = {lease.shard_id for lease in leases if self._clock.alive(lease.shard_id, now)}
        live_workers = {w for w in workers if self._clock.alive(WORKER_PREFIX + w, now)}
        decision = plan(leases, self.shards, me=self.me, held=set(self.held), alive=alive, live_workers=live_workers)
        changes.give_up = decision.give_up
        for lease in decision.take:
            started = self._monotonic()
            taken = self._try("lease take", partial(self.table.take, lease, self.me))
            if taken is not None:
                self.held[taken.shard_id] = taken
                self._valid_until[taken.shard_id] = started + self.lease_seconds
                changes.acquired.append(taken)
        if changes.acquired or changes.give_up:
            log.info("leases balanced", extra={"held": sorted(self.held), "fair_share": decision.fair_share,
                                               "live_workers": decision.live_workers, "give_up": decision.give_up})

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
