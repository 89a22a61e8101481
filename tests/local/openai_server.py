"""A tiny OpenAI-compatible completions server on loopback, for the local fleet's --model-url.

POST /v1/completions answers as vLLM's server does (vllm-project/vllm @ 0052bed3,
vllm/entrypoints/openai/protocol.py: CompletionResponse {id, object "text_completion", created,
model, choices[{index, text, finish_reason}], usage {prompt_tokens, completion_tokens, total_tokens}}).
Its "model" is a rule, not a network: the decision names the first action the request's guided-decoding
schema allows (structured_outputs.json, or guided_json) and is valid against that schema. Every request
body is kept in `requests` so tests can check what the client sent.

`python -m tests.local.openai_server PORT` serves until interrupted (for a hand run of the fleet).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def decision_for(body: dict[str, Any]) -> dict[str, Any]:
    schema = (body.get("structured_outputs") or {}).get("json") or body.get("guided_json") or {}
    actions = schema.get("properties", {}).get("action", {}).get("enum") or ["ignore"]
    return {"action": actions[0], "params": {"message": f"{len(body.get('prompt', ''))}-character prompt read"},
            "rationale": "the first allowed action", "confidence": 0.5}


class CompletionsServer:
    """ThreadingHTTPServer on 127.0.0.1 (port 0 = any free port); start() returns the base URL."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server calls do_<METHOD>
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                outer.requests.append(body)
                outer.paths.append(self.path)
                if self.path != "/v1/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "NotFound", "code": 404}})
                    return
                text = json.dumps(decision_for(body))
                prompt_tokens, completion_tokens = len(body.get("prompt", "")) // 4 + 1, len(text) // 4 + 1
                self._send(200, {"id": f"cmpl-{len(outer.requests)}", "object": "text_completion",
                                 "created": int(time.time()), "model": body.get("model", ""),
                                 "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                           "total_tokens": prompt_tokens + completion_tokens}})

            def _send(self, status: int, doc: dict[str, Any]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> str:
        self._thread.start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


if __name__ == "__main__":
    server = CompletionsServer(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    sys.stdout.write(server.start() + "\n")
    sys.stdout.flush()
    try:
        server._thread.join()
    except KeyboardInterrupt:
        server.stop()
