"""Stopping a worker cleanly within `shutdown_deadline_seconds`.

Order: report "draining"; stop reading and close the scheduler (queued, unsent items are
dropped unacknowledged); let in-flight requests and their finish steps complete while leases
keep being renewed and finished items acknowledged, up to the deadline minus a reserve; past
that, cancel the finish steps not yet begun and leave every unfinished record unacknowledged
(not checkpointed, so the next owner re-reads them; a thread still in the model makes the
process exit hard, see worker.exit_code); checkpoint what finished; release every lease;
complete a pending termination lifecycle action with CONTINUE; flush metrics; log one summary line.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from agentfleet.decide.scheduler import Scheduler
from agentfleet.decide.sender import SendLoop
from agentfleet.ingest.coordinator import LeaseCoordinator
from agentfleet.ingest.shards import ShardSet, Stats
from agentfleet.ops import logs
from agentfleet.ops.health import HealthServer
from agentfleet.ops.metrics import Metrics
from agentfleet.ops.shutdown import Metadata, StopSignal
from agentfleet.spec.settings import Settings


class Worker(Protocol):
    """What drain needs of a worker (agentfleet.entrypoints.worker.Worker), so drain imports no worker."""

    settings: Settings
    stop: StopSignal
    health: HealthServer | None
    metadata: Metadata | None
    clients: Any
    metrics: Metrics
    scheduler: Scheduler
    sender: SendLoop
    shards: ShardSet
    stats: Stats
    me: str
    started: float
    abandoned: bool

    @property
    def leases(self) -> LeaseCoordinator: ...

    def drain_done(self) -> None: ...

log = logs.get("agentfleet.entrypoints.worker")
_RESERVE_MAX_SECONDS = 5.0  # time kept back from the deadline for checkpoints, releases and the hook


def drain(worker: Worker) -> int:
    settings, stop = worker.settings, worker.stop
    began = time.monotonic()
    deadline = (stop.at or began) + settings.shutdown_deadline_seconds
    reserve = min(_RESERVE_MAX_SECONDS, 0.2 * settings.shutdown_deadline_seconds)
    if worker.health is not None:
        worker.health.set_state("draining")
    queued_dropped = worker.scheduler.close()
    in_flight = worker.scheduler.active()

    def tick() -> None:
        if worker.leases.due():
            worker.shards.apply(worker.leases.tick(taking=False))
        worker.drain_done()

    if not worker.sender.wait_idle(deadline - reserve, tick):
        worker.sender.abandon()
        worker.abandoned = True
        log.warning("in-flight items passed the shutdown deadline; leaving them unacknowledged",
                    extra={"items": worker.scheduler.active()})
    worker.drain_done()
    worker.sender.close()
    worker.shards.collect_quarantined()
    worker.shards.quarantine.stop()
    worker.shards.checkpoint(force=True)
    unacknowledged = sum(sum(1 for left in r.pending.values() if left > 0) for r in worker.shards.readers.values())
    released = sorted(worker.leases.held)
    worker.leases.release_all()
    lifecycle = _complete_lifecycle(worker)
    worker.metrics.flush()
    now = time.monotonic()
    log.info("worker stopped", extra={
        "worker_id": worker.me, "reason": stop.reason, "uptime_s": round(now - worker.started, 1),
        "drain_ms": round((now - began) * 1000, 1), "within_deadline": now <= deadline,
        "records": worker.stats.records, "events": worker.stats.events, "quarantined": worker.stats.quarantined,
        "decisions": worker.stats.decisions, "checkpoints": worker.stats.checkpoints,
        "queued_dropped": queued_dropped, "in_flight_at_stop": in_flight, "unacknowledged_records": unacknowledged,
        "abandoned_batch": worker.abandoned, "released": released, "lifecycle_action": lifecycle,
    })
    return 0


def _complete_lifecycle(worker: Worker) -> str:
    """CONTINUE a pending termination hook so Auto Scaling terminates now instead of at the hook timeout."""
    settings, metadata = worker.settings, worker.metadata
    if metadata is None or not (settings.asg_name and settings.termination_hook_name):
        return "none"
    try:
        pending = worker.stop.termination_hook_pending or metadata.target_lifecycle_state() == "Terminated"
        if not pending:
            return "none"
        from agentfleet.ops.aws import client
        from agentfleet.ops.instance import complete_lifecycle_action

        instance_id = metadata.instance_id() or ""
        complete_lifecycle_action(worker.clients.autoscaling or client("autoscaling"), asg_name=settings.asg_name,
                                  hook_name=settings.termination_hook_name, instance_id=instance_id,
                                  result="CONTINUE")
        return "CONTINUE"
    except Exception as exc:
        log.warning("completing the lifecycle action failed; the hook times out instead",
                    extra={"error": f"{type(exc).__name__}: {exc}"})
        return "failed"
