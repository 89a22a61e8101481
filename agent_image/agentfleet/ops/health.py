"""The container's HTTP contract: `GET /ping` answers 200 only while the worker is healthy.

States: "starting" (boot: model not answering yet), "healthy" (serving), "unhealthy" (running
but unable to do its job, e.g. lease balancing keeps failing, so the group replaces it and an
operator sees why), "draining" (shutting down). The load balancer / ASG health check and the local fleet read it.
Everything else answers a JSON error with the right status code.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agentfleet.ops import logs

log = logs.get(__name__)
STATES = ("starting", "healthy", "unhealthy", "draining")


class HealthServer:
    """A tiny threaded HTTP server; `port=0` picks a free port (read `.port` after `start`)."""

    def __init__(self, port: int = 8080, host: str = "0.0.0.0", state: str = "starting") -> None:  # noqa: S104
        # Binding all interfaces is the point: the health check reaches the container from outside.
        self._check(state)
        self._state = state
        self._since = time.time()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    @staticmethod
    def _check(state: str) -> None:
        if state not in STATES:
            raise ValueError(f"health state must be one of {STATES}, got {state!r}")

    def set_state(self, state: str) -> None:
        self._check(state)
        with self._lock:
            if state != self._state:
                log.info("health state", extra={"from": self._state, "to": state})
            self._state, self._since = state, time.time()

    def snapshot(self) -> tuple[str, float]:
        with self._lock:
            return self._state, self._since

    def start(self) -> HealthServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)
        self._thread.start()
        log.info("health server listening", extra={"port": self.port, "state": self.state})
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path != "/ping":
                    self._reply(404, {"error": "not_found", "message": f"no route for {path}; use GET /ping"})
                    return
                state, since = owner.snapshot()
                self._reply(200 if state == "healthy" else 503,
                            {"status": state, "time_of_last_update": int(since)})

            do_HEAD = do_GET

            def _not_allowed(self) -> None:
                self._reply(405, {"error": "method_not_allowed", "message": f"{self.command} is not supported"})

            do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed

            def log_message(self, format: str, *args: Any) -> None:
                pass  # health probes every few seconds would drown the JSON logs

        return Handler
