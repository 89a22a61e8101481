"""An HTTP proxy in front of the emulator that fails every Nth AWS call.

Faults alternate between a 500 before the request reaches the emulator, a throttling
error (400 ThrottlingException, as Kinesis, DynamoDB and Step Functions send it), and a
500 *after* the emulator applied the request (a lost response: the retry must be idempotent).
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

FAULTS = ("server_error", "throttle", "lost_response")


class FaultyProxy:
    def __init__(self, upstream: str, every: int) -> None:
        parsed = urlparse(upstream)
        self.host, self.port_upstream, self.every = parsed.hostname or "localhost", parsed.port or 80, every
        self.injected: dict[str, int] = dict.fromkeys(FAULTS, 0)
        self.forwarded = 0
        self.calls: dict[str, int] = {}  # X-Amz-Target -> calls seen
        self._throttle_until, self._throttle_prefix = 0.0, ""
        self._count = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://localhost:{self._server.server_address[1]}"

    def start(self) -> FaultyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def throttle(self, seconds: float, target_prefix: str) -> None:
        with self._lock:
            self._throttle_until, self._throttle_prefix = time.monotonic() + seconds, target_prefix

    def _next_fault(self, target: str) -> str | None:
        with self._lock:
            self.calls[target] = self.calls.get(target, 0) + 1
            if time.monotonic() < self._throttle_until and target.startswith(self._throttle_prefix):
                self.injected["throttle"] += 1
                return "throttle"
            if not self.every:
                self.forwarded += 1
                return None
            n = next(self._count)
            if n % self.every:
                self.forwarded += 1
                return None
            fault = FAULTS[(n // self.every) % len(FAULTS)]
            self.injected[fault] += 1
            return fault

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list[Any], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port_upstream, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, status: int, headers: list[Any], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, code: str) -> None:
                body = json.dumps({"__type": code, "message": f"injected {code}"}).encode()
                self._send(status, [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code)], body)

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                target = self.headers.get("X-Amz-Target", "")
                fault = None if self.path.startswith("/moto-api") else proxy._next_fault(target)
                if fault == "server_error":
                    self._error(500, "InternalFailure")
                    return
                if fault == "throttle":
                    self._error(400, "ThrottlingException")
                    return
                status, response_headers, response_body = proxy._forward(self.command, self.path, headers, body)
                if fault == "lost_response":
                    self._error(500, "InternalFailure")
                    return
                self._send(status, response_headers, response_body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
