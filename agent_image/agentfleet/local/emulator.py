"""The embedded AWS emulator: moto in server mode, in its own process, on loopback.

Clients must use `http://localhost:PORT` (moto's CloudFormation parses S3 template URLs
by host name). Step Functions executions are switched on so state machines really run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

REGION = "us-east-1"
# Fake credentials: moto accepts anything; real ones must never reach the emulator.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Emulator:
    """A running moto server; `env()` gives the variables a client process needs."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def endpoint(self) -> str:
        return f"http://localhost:{self.port}"

    def env(self) -> dict[str, str]:
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def post(self, path: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(  # noqa: S310 - our own http://localhost endpoint
            self.endpoint + path, data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - our own http://localhost endpoint
            pass

    def reset(self) -> None:
        """Drop every resource (moto's reset API), keep the process."""
        self.post("/moto-api/reset", {})
        self.enable_execution()

    def enable_execution(self) -> None:
        self.post("/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(port: int | None = None, timeout: float = 30.0, log_path: str | None = None) -> Emulator:
    """Start moto_server on a free loopback port and wait until it answers."""
    port = port or free_port()
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "agentfleet.local.moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=out, stderr=out, env={**os.environ, **CREDENTIALS},
    )
    emulator = Emulator(port, process)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(emulator.endpoint + "/moto-api/", timeout=2):  # noqa: S310 - loopback
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                emulator.stop()
                raise RuntimeError(f"moto server did not start on port {port}") from None
            time.sleep(0.2)
    emulator.enable_execution()
    return emulator
