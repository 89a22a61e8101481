"""The shards this worker holds: lease changes, reading, validation and routing, checkpoints.

Owned by the worker's main loop (not thread-safe). A record is first de-aggregated (KPL,
ingest/kpl.py); each user record becomes work items in the scheduler (one per subscribed agent)
or a quarantine record; the checkpoint of a shard only moves over records whose every item is
handled (see consumer.ShardReader). Items and quarantine writes carry their reader's
generation (the lease counter when it was taken): one finishing after the lease was lost and
taken again belongs to the old reader and acknowledges nothing in the new one. Reading is
bounded: a shard is read only while the scheduler has room, and no more records than that room
(decide/scheduler.py Scheduler.room); leases and checkpoints go on while reading waits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from agentfleet.act.audit import AuditLog
from agentfleet.act.dispatch import decision_id
from agentfleet.decide.scheduler import Scheduler, WorkItem
from agentfleet.ingest.adapters import Dropped, arrival_iso, decode_named
from agentfleet.ingest.consumer import ShardReader
from agentfleet.ingest.coordinator import Changes, LeaseCoordinator
from agentfleet.ingest.kpl import UserRecord, deaggregate
from agentfleet.ingest.leases import SHARD_END
from agentfleet.ingest.quarantine import Quarantine, QuarantineWriter
from agentfleet.ops import logs
from agentfleet.ops.metrics import Metrics
from agentfleet.spec import metric_names
from agentfleet.spec.catalog import subscribers
from agentfleet.spec.events import Rejection
from agentfleet.spec.settings import Settings

log = logs.get(__name__)
CHECKPOINT_EVERY = 1.0  # seconds between checkpoint writes per shard while running (always on stop)


@dataclass
class Stats:
    records: int = 0
    events: int = 0
    quarantined: int = 0
    decisions: int = 0
    checkpoints: int = 0


class ShardSet:
    """Readers for the leased shards, fed by the lease coordinator."""

    def __init__(self, settings: Settings, kinesis: Any, leases: LeaseCoordinator, scheduler: Scheduler,
                 audit: AuditLog, metrics: Metrics, stats: Stats) -> None:
        self.settings, self._kinesis, self.leases, self.scheduler = settings, kinesis, leases, scheduler
        self.audit, self.metrics, self.stats = audit, metrics, stats
        self.readers: dict[str, ShardReader] = {}
        self.quarantine = QuarantineWriter(audit, settings.worker_id)
        self._last_checkpoint: dict[str, float] = {}

    def apply(self, changes: Changes) -> None:
        for shard_id in changes.lost:
            self.drop(shard_id)
        for lease in changes.acquired:
            self.readers[lease.shard_id] = ShardReader(
                self._kinesis, self.settings.stream_name, lease.shard_id, checkpoint=lease.checkpoint,
                poll_interval=max(0.2, self.settings.poll_interval_ms / 1000.0),  # Kinesis allows 5 reads/s/shard
                limit=self.settings.max_records_per_read, max_pending=self.settings.max_records_per_read,
                generation=lease.counter)
        for shard_id in changes.give_up:
            if shard_id in self.readers:
                self.readers[shard_id].closing = True
                self.scheduler.drop_shard(shard_id)
        for shard_id, reader in self.readers.items():
            info = self.leases.shards.get(shard_id)
            if info is not None:
                reader.ending_sequence = info.ending_sequence

    def drop(self, shard_id: str) -> None:
        """The lease is gone: forget the shard's queued work; its next owner re-reads it."""
        self.readers.pop(shard_id, None)
        dropped = self.scheduler.drop_shard(shard_id)
        log.info("shard dropped", extra={"shard_id": shard_id, "queued_items_dropped": dropped})

    def poll(self) -> None:
        """Read the shards that are due while the scheduler has room, sharing the room among them so no
        shard starves another (a record may still fan out to several items, one per subscribed agent)."""
        due = [reader for shard_id, reader in self.readers.items() if reader.due() and self.leases.valid(shard_id)]
        for index, reader in enumerate(due):
            room = self.scheduler.room()
            if room <= 0:
                break
            for record in reader.poll(limit=max(1, room // (len(due) - index))):
                self._accept(reader, record)
        self.collect_quarantined()

    def _current(self, shard_id: str, generation: int) -> ShardReader | None:
        """The shard's reader if it is still the one of `generation` (the lease was not lost and retaken)."""
        reader = self.readers.get(shard_id)
        return reader if reader is not None and reader.generation == generation else None

    def done(self, item: WorkItem) -> None:
        reader = self._current(item.shard_id, item.generation)
        if reader is not None:
            reader.done(item.sequence_number)

    def _accept(self, reader: ShardReader, record: dict[str, Any]) -> None:
        self.stats.records += 1
        seq = str(record["SequenceNumber"])
        users = deaggregate(bytes(record["Data"]), str(record.get("PartitionKey", "")))
        # ApproximateArrivalTimestamp is optional in GetRecords' Record shape (required: SequenceNumber,
        # Data; botocore 1.44.8 kinesis service-2.json); without it, arrival is when this worker read it.
        arrival = arrival_iso(record.get("ApproximateArrivalTimestamp") or time.time())
        planned = [(user, self._route(reader, seq, user, arrival)) for user in users]
        # A dropped record (a CloudWatch Logs control message) has no work item: it is handled as read.
        reader.add(seq, sum(1 if isinstance(items, Rejection) else 0 if isinstance(items, Dropped) else len(items)
                            for _, items in planned))
        for user, items in planned:
            if isinstance(items, Dropped):
                self.metrics.count(metric_names.RECORDS_DROPPED, **{metric_names.REASON: items.reason})
                log.info("record dropped", extra={"shard_id": reader.shard_id, "sequence_number": seq,
                                                  "reason": items.reason, "detail": items.detail})
                continue
            if isinstance(items, Rejection):
                self.stats.quarantined += 1
                self.metrics.count(metric_names.EVENTS_QUARANTINED, **{metric_names.REASON: items.reason})
                self.quarantine.submit(Quarantine(reader.shard_id, seq, user.sub_sequence, items, user.data,
                                                  reader.generation, user.partition_key))
                continue
            for item in items:
                self.scheduler.add(item)
            self.stats.events += 1
            self.metrics.count(metric_names.EVENTS_PROCESSED)

    def _route(self, reader: ShardReader, seq: str, user: UserRecord,
               arrival: str) -> list[WorkItem] | Rejection | Dropped:
        """One work item per subscribed agent, why the user record is quarantined, or why it is dropped.
        The record's wire format (CloudEvents, EventBridge, CloudWatch Logs, the kit envelope) is
        recognised by agentfleet.ingest.adapters."""
        adapter, parsed = decode_named(user.data, arrival_time=arrival, max_record_bytes=self.settings.max_record_bytes)
        self.metrics.count(metric_names.RECORDS_BY_ADAPTER, **{metric_names.ADAPTER: adapter})
        if isinstance(parsed, Rejection | Dropped):
            return parsed
        agents = subscribers(self.settings.agents, parsed.type)
        if not agents:
            return Rejection("no_subscriber", f"no agent subscribes to event type {parsed.type!r}",
                             parsed.id, parsed.type)
        now = time.monotonic()
        return [WorkItem(reader.shard_id, seq, parsed, agent,
                         decision_id(agent.name, reader.shard_id, seq, user.sub_sequence), now,
                         sub_sequence=user.sub_sequence, generation=reader.generation, raw=user.data,
                         partition_key=user.partition_key)
                for agent in agents]

    def collect_quarantined(self) -> None:
        """Acknowledge the quarantine records the writer thread has finished (if their reader is current)."""
        for q in self.quarantine.finished():
            reader = self._current(q.shard_id, q.generation)
            if reader is not None:
                reader.done(q.sequence_number)

    def checkpoint(self, *, force: bool) -> None:
        now = time.monotonic()
        for shard_id, reader in list(self.readers.items()):
            recent = now - self._last_checkpoint.get(shard_id, 0.0) < CHECKPOINT_EVERY
            # A full reader reads nothing until a checkpoint frees its finished records; waiting
            # out the interval would cap a worker at max_pending records per second per shard.
            full = len(reader.pending) >= reader.max_pending
            if recent and not force and not reader.ended and not full:
                continue
            self._checkpoint_one(shard_id, reader, now)

    def _checkpoint_one(self, shard_id: str, reader: ShardReader, now: float) -> bool:
        """Write the shard's checkpoint if it moved; False if the lease turned out to be lost."""
        seq = reader.checkpointable()
        if seq is None:
            return True
        try:
            ok = self.leases.checkpoint(shard_id, seq)
        except Exception as exc:
            log.warning("checkpoint failed; will retry", extra={"shard_id": shard_id, "error": str(exc)})
            return True
        if not ok:
            self.drop(shard_id)
            return False
        reader.committed(seq)
        self._last_checkpoint[shard_id] = now
        self.stats.checkpoints += 1
        if seq == SHARD_END:
            log.info("shard finished", extra={"shard_id": shard_id})
            self.leases.release(shard_id)
            self.readers.pop(shard_id, None)
        return True

    def accepting(self, shard_id: str) -> bool:
        """True while this worker still processes the shard (held and not being given up)."""
        reader = self.readers.get(shard_id)
        return reader is not None and not reader.closing

    def release_given_up(self, busy: set[str]) -> None:
        """Hand back shards the balancer gave up, once none of their items is in the running batch."""
        for shard_id, reader in list(self.readers.items()):
            if reader.closing and shard_id not in busy:
                self.scheduler.drop_shard(shard_id)
                if self._checkpoint_one(shard_id, reader, time.monotonic()) and shard_id in self.readers:
                    self.leases.release(shard_id)
                    self.readers.pop(shard_id, None)

    def backlog(self) -> tuple[int, int]:
        """(records behind, max MillisBehindLatest) over held shards."""
        records = sum(r.backlog() for r in self.readers.values())
        return records, max((r.millis_behind for r in self.readers.values()), default=0)
