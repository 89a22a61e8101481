"""One `vllm serve` child process: start in its own process group, wait for /health, stop the whole
group and wait until its NeuronCores are free (a server started while the previous one's cores are
still held fails with the cores busy). READY_TIMEOUT_ENV is vLLM's own engine-ready timeout
(vllm/envs.py), named in the error when the server gives up before it is ready."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from agentfleet.ops import logs
from agentfleet.serve.boot import device_health

log = logs.get(__name__)

READY_TIMEOUT_ENV = "VLLM_ENGINE_READY_TIMEOUT_S"
CORES_FREE_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class VllmServer:
    """One `vllm serve` child in its own process group; `wait_ready` polls GET /health."""

    def __init__(self, command: list[str], env: dict[str, str], port: int, artifact_dir: Path,
                 cores: tuple[int, ...] | None = None) -> None:
        self.port, self.artifact_dir, self.cores = port, artifact_dir, cores  # cores: None = every core
        self.base_url = f"http://127.0.0.1:{port}"
        log.info("starting vllm server", extra={"command": " ".join(command)})
        # A session of its own: stop() signals the whole group, so no engine-core or worker child is
        # left holding NeuronCores after the API server exits.
        self.process = subprocess.Popen(command, env=env, start_new_session=True)

    def wait_ready(self, timeout_s: float, poll_s: float = 2.0) -> None:
        start = last_log = time.monotonic()
        delay = 0.1  # short first polls: a warm start is seconds, a cold compile is an hour
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"vllm server exited with code {self.process.returncode} before it was ready "
                                   f"(its log above says why; {READY_TIMEOUT_ENV}={timeout_s:.0f})")
            try:
                with urllib.request.urlopen(self.base_url + "/health", timeout=5) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                pass
            now = time.monotonic()
            if now - start > timeout_s + 60:  # vLLM's own timeout fires first; this is the backstop
                self.stop()
                raise TimeoutError(f"vllm server not ready after {timeout_s:.0f} s")
            if now - last_log >= 60:
                last_log = now
                log.info("vllm server warming up (compiling on a cache miss)", extra={"elapsed_s": round(now - start)})
            time.sleep(delay)
            delay = min(poll_s, delay * 2)

    def alive(self) -> bool:
        return self.process.poll() is None

    def healthy(self, timeout_s: float = 2.0) -> bool:
        """Running and GET /health answers 200."""
        if not self.alive():
            return False
        try:
            with urllib.request.urlopen(self.base_url + "/health", timeout=timeout_s) as response:  # noqa: S310
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self, timeout_s: float = 60, cores_free_timeout_s: float = CORES_FREE_TIMEOUT_S,
             wait_for_cores: bool = True) -> None:
        """SIGTERM the process group, SIGKILL what is left after timeout_s, then (unless the process is
        about to exit anyway) wait until the NeuronCores are released: a new server started earlier
        fails with the cores busy."""
        pgid = self.process.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(pgid, signal.SIGKILL)  # the leader may be gone while its children still run
        except ProcessLookupError:
            pass
        self.process.wait()
        if wait_for_cores:
            device_health.wait_cores_free(timeout_s=cores_free_timeout_s, cores=self.cores)
