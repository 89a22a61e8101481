"""Sender threads and the finish pool: what keeps the model's slots busy.

One sender thread per slot takes the next item from the Scheduler, prepares its prompt, sends
one request and hands the completion to a finish pool (guardrails, audit, action, memory), then
takes the next item at once: post-decision I/O never stalls sending. Items that end go to
`on_done` (acknowledge) after their pair is released; items to retry go to `on_retry` with
their pair still held (the main loop requeues them, or releases them if the shard is gone).
`cancel` (drain past its deadline) makes finish steps not yet begun leave their items
unacknowledged, so the next owner of the shard re-reads them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agentfleet.decide.memory import Memory
from agentfleet.decide.pipeline import Completion, DecisionPipeline
from agentfleet.decide.scheduler import Scheduler, WorkItem
from agentfleet.ops import logs
from agentfleet.ops.metrics import Metrics
from agentfleet.spec import metric_names

log = logs.get(__name__)


def finish_threads(window: int) -> int:
    """Finish-pool size: one per slot up to 32 (each finish is a few DynamoDB/Step Functions calls)."""
    return max(4, min(32, window))


class SendLoop:
    """Runs `scheduler.window` sender threads and a finish pool over one DecisionPipeline."""

    def __init__(self, scheduler: Scheduler, pipeline: DecisionPipeline, metrics: Metrics, *,
                 on_done: Callable[[WorkItem], None], on_retry: Callable[[WorkItem], None],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.scheduler, self.pipeline, self.metrics = scheduler, pipeline, metrics
        self._on_done, self._on_retry, self._monotonic = on_done, on_retry, monotonic
        self.cancel = threading.Event()
        self._pool = ThreadPoolExecutor(finish_threads(scheduler.window), thread_name_prefix="finish")
        self._threads = [threading.Thread(target=self._run, name=f"send-{i}", daemon=True)
                         for i in range(scheduler.window)]
        self._lock = threading.Lock()
        self.left: list[WorkItem] = []  # items left unacknowledged by a cancelled drain

    def start(self) -> SendLoop:
        for thread in self._threads:
            thread.start()
        return self

    def _run(self) -> None:
        while True:
            shed, item = self.scheduler.next(timeout=1.0)
            now = self._monotonic()
            for each in shed:
                self._submit(self._shed, each, now - each.enqueued)
            if item is not None:
                self._send(item)
            elif self.scheduler.closed:
                return

    def _send(self, item: WorkItem) -> None:
        try:
            memory, request = self.pipeline.prepare(item)
        except Exception as exc:
            log.warning("preparing prompt failed", extra={"decision_id": item.decision_id, "error": repr(exc)})
            self.scheduler.returned(item)
            self._submit(self._failed, item, exc)
            return
        sent = self._monotonic()
        self.metrics.observe(metric_names.QUEUE_TIME_MS, (sent - item.enqueued) * 1000, "Milliseconds")
        try:
            completion = self.pipeline.send(item, request)
        except Exception as exc:  # send catches model errors, so this is a bug: keep the thread, retry or record
            log.exception("sending failed", extra={"decision_id": item.decision_id})
            self.scheduler.returned(item)
            self._submit(self._failed, item, exc)
            return
        self.metrics.observe(metric_names.MODEL_TIME_MS, (self._monotonic() - sent) * 1000, "Milliseconds")
        self.scheduler.returned(item)
        if completion is None:
            self._settle(item, False)
        else:
            self._submit(self._finish, item, memory, completion)

    def _submit(self, step: Callable[..., None], item: WorkItem, *args: Any) -> None:
        try:
            self._pool.submit(step, item, *args)
        except RuntimeError:  # the pool is shut down (drain past its deadline): leave it unacknowledged
            self._settle(item, None)

    def _finish(self, item: WorkItem, memory: Memory, completion: Completion) -> None:
        self._guarded(item, lambda: self.pipeline.finish(item, memory, completion))

    def _failed(self, item: WorkItem, exc: BaseException) -> None:
        self._guarded(item, lambda: self.pipeline.failed(item, exc))

    def _shed(self, item: WorkItem, age: float) -> None:
        self._guarded(item, lambda: self.pipeline.shed(item, age))

    def _guarded(self, item: WorkItem, step: Callable[[], bool]) -> None:
        if self.cancel.is_set():
            self._settle(item, None)
            return
        try:
            handled = step()
        except BaseException:
            log.exception("finish step failed", extra={"decision_id": item.decision_id})
            handled = False
        self._settle(item, handled)

    def _settle(self, item: WorkItem, handled: bool | None) -> None:
        """handled True: acknowledge; False: retry; None: leave unacknowledged (cancelled)."""
        if handled is None:
            with self._lock:
                self.left.append(item)
            self.scheduler.release(item)
        elif handled:
            self.scheduler.release(item)
            self._on_done(item)
        else:
            self._on_retry(item)

    def wait_idle(self, until: float, tick: Callable[[], None]) -> bool:
        """Call `tick` (lease renewal, acknowledgments) until nothing is active or `until` passes."""
        while self._monotonic() < until:
            tick()
            if self.scheduler.active() == 0:
                return True
            time.sleep(0.05)
        tick()
        return self.scheduler.active() == 0

    def abandon(self) -> None:
        """Past the deadline: skip finish steps not yet begun; running ones (and the model) are left behind."""
        # Queued finish steps still run, see `cancel` and return at once. "Regardless of the value of
        # wait, the entire Python program will not exit until all pending futures are done executing"
        # (python/cpython Doc/library/concurrent.futures.rst, Executor.shutdown): so a drain that gives up
        # sets worker.abandoned and the process exits with os._exit (entrypoints/worker.exit_code).
        self.cancel.set()
        self._pool.shutdown(wait=False)

    def close(self) -> None:
        """After the drain: let the idle finish threads end (senders end once the scheduler is closed)."""
        self._pool.shutdown(wait=False)
