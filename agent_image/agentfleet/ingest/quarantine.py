"""Quarantine writes off the main loop: a rejected record's bytes to S3 and its audit item.

The main loop hands each rejected user record to `QuarantineWriter.submit` and, each turn,
collects the finished ones (`finished`) to acknowledge them in their reader. The writer thread
retries with backoff as long as it must, so throttling never blocks reading or lease renewal.
Attempts are capped: after MAX_ATTEMPTS failures, or at once for an error no retry can fix,
the audit item is written without the S3 copy and says why (`payload_error`); the record stays
on the stream until its retention ends. Only if even that write fails does the record stay
unacknowledged (its checkpoint held back), to be retried.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from agentfleet.act.audit import AuditLog
from agentfleet.ops import logs
from agentfleet.ops.retry import explain, is_permanent
from agentfleet.spec.events import Rejection

log = logs.get(__name__)
MAX_ATTEMPTS = 5
_BACKOFF_CAP_SECONDS = 30.0


@dataclass(frozen=True)
class Quarantine:
    """A rejected user record waiting for its audit write."""

    shard_id: str
    sequence_number: str
    sub_sequence: int | None
    rejection: Rejection
    data: bytes
    generation: int
    partition_key: str = ""
    attempts: int = 0


class QuarantineWriter:
    """One daemon thread writing quarantine records in order of arrival."""

    def __init__(self, audit: AuditLog, worker_id: str, *, wait: Callable[[float], bool] | None = None) -> None:
        self.audit, self.worker_id = audit, worker_id
        self._jobs: queue.SimpleQueue[Quarantine] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[Quarantine] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._thread: threading.Thread | None = None

    def submit(self, job: Quarantine) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="quarantine", daemon=True)
            self._thread.start()
        self._jobs.put(job)

    def finished(self) -> list[Quarantine]:
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                job = self._jobs.get(timeout=0.5)
            except queue.Empty:
                continue
            while not self._stop.is_set():
                if self._write(job):
                    self._done.put(job)
                    break
                job = replace(job, attempts=job.attempts + 1)
                self._wait(min(_BACKOFF_CAP_SECONDS, 0.5 * 2 ** job.attempts))

    def _write(self, job: Quarantine) -> bool:
        r = job.rejection
        try:
            self.audit.quarantine(shard_id=job.shard_id, sequence_number=job.sequence_number,
                                  sub_sequence=job.sub_sequence, reason=r.reason, detail=r.detail, data=job.data,
                                  event_id=r.event_id, event_type=r.event_type, worker_id=self.worker_id,
                                  partition_key=job.partition_key)
            return True
        except Exception as exc:
            log.warning("quarantine write failed", extra={"shard_id": job.shard_id, "attempt": job.attempts + 1,
                                                          "error": f"{type(exc).__name__}: {exc}"})
            if not is_permanent(exc) and job.attempts + 1 < MAX_ATTEMPTS:
                return False
            why = explain(exc)
        try:  # capped: record it without the S3 copy, saying why
            self.audit.quarantine(shard_id=job.shard_id, sequence_number=job.sequence_number,
                                  sub_sequence=job.sub_sequence, reason=r.reason, detail=r.detail, data=job.data,
                                  event_id=r.event_id, event_type=r.event_type, worker_id=self.worker_id,
                                  partition_key=job.partition_key, keep_payload=False, payload_error=why)
            return True
        except Exception as exc:
            log.warning("quarantine write failed again", extra={"shard_id": job.shard_id, "error": str(exc)})
            return False
