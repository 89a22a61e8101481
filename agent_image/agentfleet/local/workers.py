"""Worker processes of the local fleet: `python -m agentfleet.entrypoints.worker`, one per id, logs to files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from agentfleet.local.emulator import free_port


@dataclass
class WorkerProcess:
    worker_id: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def healthy(self) -> bool:
        """GET /ping answers 200 only once the model has answered a probe (invariant 4)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False


def start(count: int, env: dict[str, str], log_dir: Path) -> list[WorkerProcess]:
    log_dir.mkdir(parents=True, exist_ok=True)
    workers = []
    for i in range(count):
        worker_id, port = f"worker-{i}", free_port()
        log_path = log_dir / f"{worker_id}.log"
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "agentfleet.entrypoints.worker"], stdout=log_file, stderr=subprocess.STDOUT,
                env={**env, "AGENTFLEET_WORKER_ID": worker_id, "AGENTFLEET_HTTP_PORT": str(port)})
        workers.append(WorkerProcess(worker_id, port, log_path, process))
    return workers


def wait_healthy(workers: list[WorkerProcess], timeout: float) -> list[str]:
    """Wait until every live worker answers /ping; returns the ids that did not in time (or died)."""
    deadline = time.monotonic() + timeout
    pending = list(workers)
    while pending and time.monotonic() < deadline:
        pending = [w for w in pending if w.alive and not w.healthy()]
        if all(not w.alive for w in pending):
            break
        time.sleep(0.5)
    return [w.worker_id for w in workers if not (w.alive and w.healthy())]


def kill(worker: WorkerProcess) -> None:
    """SIGKILL: no drain, no checkpoint, no lease release (the failure the invariants are about)."""
    if worker.alive:
        os.kill(worker.process.pid, signal.SIGKILL)
        worker.process.wait()


def stop_all(workers: list[WorkerProcess], deadline_s: float) -> dict[str, int]:
    """SIGTERM every live worker, wait up to `deadline_s` for them to drain, SIGKILL the rest; exit codes."""
    for worker in workers:
        if worker.alive:
            worker.process.send_signal(signal.SIGTERM)
    end = time.monotonic() + deadline_s
    for worker in workers:
        try:
            worker.process.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
    return {w.worker_id: int(w.process.returncode) for w in workers}
