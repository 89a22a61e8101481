"""The agent worker: lease shards, read, validate, route, schedule, decide, act, checkpoint; drain on stop.

Threads: the main loop owns leases, readers and checkpoints and does the cheap I/O; it reads
no further ahead than the scheduler has room for (decide/scheduler.py). One sender thread per
model slot keeps requests in flight and a finish pool writes audit, action and memory
(decide/sender.py); they hand finished items back through a queue, which the main loop
acknowledges. A batch-native backend (no `slots`) sits behind serve/model/coalesce.py. Boot starts a
HealthServer in state "starting", builds the backend, sets "healthy" once the model
answers, then calls `Worker(settings, backend, health=..., metadata=...).run()`.
`python -m agentfleet.entrypoints.worker` does the same from settings (agentfleet.spec.settings.resolve).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Callable

from agentfleet.act.audit import AuditLog
from agentfleet.act.dispatch import Dispatcher
from agentfleet.decide.guardrails import Guardrails
from agentfleet.decide.memory import MemoryStore
from agentfleet.decide.pipeline import DecisionPipeline
from agentfleet.decide.scheduler import Scheduler, WorkItem
from agentfleet.decide.sender import SendLoop
from agentfleet.entrypoints.clients import Clients, check_settings, quarantine_bucket
from agentfleet.entrypoints.drain import drain
from agentfleet.entrypoints.replica_metrics import PrefixCacheWatcher, replica_gauges
from agentfleet.ingest.coordinator import LeaseCoordinator
from agentfleet.ingest.leases import LeaseTable
from agentfleet.ingest.shards import ShardSet, Stats
from agentfleet.ops import logs
from agentfleet.ops.aws import read_ssm_parameter
from agentfleet.ops.health import HealthServer
from agentfleet.ops.metrics import Metrics
from agentfleet.ops.shutdown import InterruptionWatcher, Metadata, StopSignal
from agentfleet.serve.model.base import GenerationRequest, ModelBackend
from agentfleet.serve.model.coalesce import CoalescingBackend
from agentfleet.spec import metric_names
from agentfleet.spec.settings import Settings, resolve

log = logs.get("agentfleet.entrypoints.worker")
_RETRY_BACKOFF_CAP = 30.0
# Consecutive lease ticks whose discovery/balancing failed (ListShards, Scan, heartbeat, take)
# before /ping answers 503: 3 ticks = one lease duration (ticks run every lease_seconds / 3),
# long enough to ride out a throttling burst, short enough that an AccessDenied shows at once.
BALANCE_FAILURES_UNHEALTHY = 3


class Worker:
    """One worker's loop. `run()` blocks until a stop is requested, drains, and returns the exit code (0)."""

    def __init__(self, settings: Settings, backend: ModelBackend, *, clients: Clients | None = None,
                 health: HealthServer | None = None, metadata: Metadata | None = None, stop: StopSignal | None = None,
                 metrics: Metrics | None = None, market: str = "", sleep: Callable[[float], None] = time.sleep) -> None:
        check_settings(settings)
        self.settings, self.backend, self.health, self.metadata = settings, backend, health, metadata
        self.clients = clients or Clients.create(settings)
        self.stop = stop or StopSignal()
        self.me, self.market = settings.worker_id, market
        self.metrics = metrics or Metrics(settings.fleet_name, settings.metrics_mode,
                                          cloudwatch=self.clients.cloudwatch)
        self.model = self._schedulable(backend)
        self.window = max(1, int(getattr(self.model, "slots", self.model.batch_size)))
        self.scheduler = Scheduler(self.window)
        self.stats = Stats()
        ddb = self.clients.dynamodb
        self.audit = AuditLog(ddb, settings.audit_table, sleep=sleep, s3=self.clients.s3,
                              bucket=quarantine_bucket(settings), prefix=settings.quarantine_prefix)
        coordinator = LeaseCoordinator(
            LeaseTable(self.clients.leases_dynamodb or ddb, settings.leases_table, lease_seconds=settings.lease_seconds,
                       sleep=sleep),
            self.clients.kinesis, settings.stream_name, self.me, lease_seconds=settings.lease_seconds)
        self.shards = ShardSet(settings, self.clients.kinesis, coordinator, self.scheduler, self.audit, self.metrics,
                               self.stats)
        self.pipeline = DecisionPipeline(
            backend=self.model, audit=self.audit, metrics=self.metrics, worker_id=self.me,
            memory=MemoryStore(ddb, settings.memory_table, max_items=settings.memory_max_items,
                               ttl_days=settings.memory_ttl_days, sleep=sleep),
            dispatcher=Dispatcher(self.clients.sfn, settings.state_machine_arn, sleep=sleep),
            guardrails=Guardrails(settings.agents, dry_run=settings.dry_run, targets=settings.targets))
        self.abandoned = False  # set by drain: an item was still in the model or finishing past the deadline
        self.started = 0.0
        self._done: queue.SimpleQueue[WorkItem] = queue.SimpleQueue()
        self._retry: queue.SimpleQueue[WorkItem] = queue.SimpleQueue()
        self._wake = threading.Event()
        self.sender = SendLoop(self.scheduler, self.pipeline, self.metrics,
                               on_done=self._finished(self._done), on_retry=self._finished(self._retry))
        self._next_gauges = 0.0
        self._next_in_service = 0.0
        self.turns = 0  # main-loop iterations (liveness: the loop never waits on a retry)

    @property
    def leases(self) -> LeaseCoordinator:
        return self.shards.leases

    def run(self) -> int:
        self.started = time.monotonic()
        watcher = InterruptionWatcher(self.metadata, self.stop, self.metrics).start() if self.metadata else None
        log.info("worker started", extra={"worker_id": self.me, "stream": self.settings.stream_name,
                                          "window": self.window, "model": self.backend.model_id,
                                          "agents": [a.name for a in self.settings.agents]})
        self.sender.start()
        prefix_cache = PrefixCacheWatcher(self.metrics, self.model).start()
        while not self.stop.is_set():
            try:
                self._step()
            except Exception:
                # A bug or an unexpected AWS answer must not kill the worker; its leases expire if it persists.
                log.exception("worker loop error")
                self.stop.wait(1.0)
        try:
            return drain(self)
        finally:
            prefix_cache.stop()
            if watcher:
                watcher.stop()
            if isinstance(self.model, CoalescingBackend):
                self.model.stop()  # its thread only; the caller closes the backend

    def _schedulable(self, backend: ModelBackend) -> ModelBackend:
        """The backend the senders call: as is if it takes concurrent single requests (has `slots`),
        else behind a coalescer that batches them (its batch fill is the BatchFill metric)."""
        if hasattr(backend, "slots"):
            return backend
        size = max(1, backend.batch_size)

        def fill(rows: int) -> None:
            self.metrics.observe(metric_names.BATCH_FILL_PERCENT, 100.0 * rows / size, "Percent")

        return CoalescingBackend(backend, max_wait=self.settings.batch_max_wait_ms / 1000.0, on_batch=fill)

    def _finished(self, into: queue.SimpleQueue[WorkItem]) -> Callable[[WorkItem], None]:
        def put(item: WorkItem) -> None:
            into.put(item)
            self._wake.set()
        return put

    def _step(self) -> None:
        self.turns += 1
        if self.leases.due():
            self.shards.apply(self.leases.tick(taking=True))
            self._check_balancing()
        self.drain_done()
        self.shards.poll()  # reads only while the scheduler has room (bounded read-ahead)
        self.shards.release_given_up(self.scheduler.busy_shards())
        self.shards.checkpoint(force=False)
        self._emit_gauges()
        self.metrics.maybe_flush()
        self._wake.wait(max(0.005, min(self.settings.poll_interval_ms / 1000.0 / 2, 0.25)))
        self._wake.clear()

    def drain_done(self) -> None:
        """Acknowledge finished items; requeue items to retry (with backoff) unless their shard is gone."""
        while True:
            try:
                item = self._done.get_nowait()
            except queue.Empty:
                break
            self.stats.decisions += 1
            self.shards.done(item)
        while True:
            try:
                item = self._retry.get_nowait()
            except queue.Empty:
                return
            if self.shards.accepting(item.shard_id) and not self.stop.is_set():
                delay = min(_RETRY_BACKOFF_CAP, 0.5 * 2 ** item.attempts)
                self.scheduler.requeue(item, delay)
                log.warning("item requeued", extra={"decision_id": item.decision_id, "delay_s": delay})
            else:
                self.scheduler.release(item)  # not ours any more, or stopping: left unacknowledged

    def _check_balancing(self) -> None:
        """Count each failed balancing tick; past the threshold /ping turns unhealthy until one succeeds."""
        failures = self.leases.balance_failures
        if failures:
            self.metrics.count(metric_names.LEASE_BALANCING_FAILURES)
        if self.health is None:
            return
        state = self.health.state
        if failures >= BALANCE_FAILURES_UNHEALTHY and state == "healthy":
            log.error("lease balancing keeps failing; reporting unhealthy", extra={"consecutive_failures": failures})
            self.health.set_state("unhealthy")
        elif failures == 0 and state == "unhealthy":
            self.health.set_state("healthy")

    def _emit_gauges(self) -> None:
        now = time.monotonic()
        if now < self._next_gauges:
            return
        self._next_gauges = now + 1.0
        records, millis = self.shards.backlog()
        self.metrics.gauge(metric_names.BACKLOG_RECORDS, float(records))
        self.metrics.gauge(metric_names.MILLIS_BEHIND_LATEST, float(millis), "Milliseconds")
        self.metrics.gauge(metric_names.IN_FLIGHT_REQUESTS, float(self.scheduler.sending))
        self.metrics.gauge(metric_names.MODEL_SLOTS, float(self.window))
        replica_gauges(self.metrics, self.model)
        if now >= self._next_in_service:
            self._next_in_service = now + 60.0
            self.metrics.gauge(metric_names.LEASED_SHARDS, float(len(self.leases.held)))
            if self.market:
                self.metrics.count(metric_names.WORKERS_IN_SERVICE, **{metric_names.MARKET: self.market})


def main() -> int:
    """`python -m agentfleet.entrypoints.worker`: health server (starting), backend, probe (healthy), loop, exit 0."""
    logs.configure(os.environ.get("AGENTFLEET_LOG_LEVEL", "INFO"))
    settings = resolve(ssm_get=read_ssm_parameter)
    check_settings(settings)
    stop = StopSignal()
    stop.install_signal_handlers()
    health = HealthServer(settings.http_port).start()
    from agentfleet.serve.model.factory import create_backend

    try:
        with logs.timed(log, "model ready", engine=settings.engine, model=settings.model_id):
            backend = create_backend(settings)
            # Invariant 4: not healthy until the model has answered.
            backend.generate([GenerationRequest("health probe: reply with a decision", ("ignore",))])
    except Exception:
        log.exception("model did not load or answer; exiting so the instance is replaced")
        health.stop()
        return 1
    health.set_state("healthy")
    metadata = None
    if settings.asg_name:  # on EC2 in an Auto Scaling group: watch for Spot notices and scale-in
        from agentfleet.ops.instance import InstanceMetadata

        metadata = InstanceMetadata()
    worker = Worker(settings, backend, health=health, metadata=metadata, stop=stop)
    code = worker.run()
    backend.close()
    health.stop()
    return exit_code(worker, code)


def exit_code(worker: Worker, code: int) -> int:
    """The process's exit code after `worker.run()`. If a thread is still inside the model or finishing,
    interpreter teardown would wait on it, so the process exits here and now instead."""
    if worker.abandoned:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
