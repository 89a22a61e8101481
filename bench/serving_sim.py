"""A vLLM-like OpenAI-compatible server on loopback, for benchmarks: `python -m bench.serving_sim`.

One HTTP server per replica (127.0.0.1, port 0), each over a bench.sim_engine.Replica (continuous
batching, prefix cache; constants in bench.sim_config). Endpoints, shaped as vLLM's:
- POST /v1/completions, /v1/chat/completions: a valid decision JSON (the first allowed action other
  than "ignore", from the request's structured-output schema) with `usage`; the completion length
  is drawn from the configured distribution. Prompt + max_tokens over max_model_len is a 400.
  Chat: the messages' contents joined by newlines (ASSUMPTION: no chat template is applied).
- POST /tokenize: {"count", "max_model_len", "tokens"} (vLLM TokenizeResponse, entrypoints/openai/protocol.py).
- GET /health (200, empty), GET /metrics (Prometheus text, below).
- GET /sim/stats: simulator-only JSON (busy and available slot-seconds, counters) for the benchmarks.
Metric names: vllm-project/vllm vllm/v1/metrics/loggers.py (PrometheusStatLogger, commit 005a810):
counters "vllm:prefix_cache_queries" / "vllm:prefix_cache_hits" (in tokens), "vllm:prompt_tokens",
"vllm:generation_tokens", gauges "vllm:num_requests_running", "vllm:num_requests_waiting",
"vllm:kv_cache_usage_perc", labels model_name and engine. prometheus_client exposes a counter's
sample as name + "_total" (prometheus.github.io/client_python/instrumenting/counter). That vLLM 0.24
kept these names is not confirmed at its source (the names are unchanged from 0.9 to that commit).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.sim_config import SimConfig
from bench.sim_engine import Replica

MESSAGE, RATIONALE = "simulated decision", "the simulator answers every event the same way"
COUNTERS = (("prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens."),
            ("prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens."),
            ("prompt_tokens", "Number of prefill tokens processed."),
            ("generation_tokens", "Number of generation tokens processed."))


def decision_text(body: dict[str, Any]) -> str:
    """A decision the kit's parser accepts: the first allowed action that acts, else the first."""
    guided = body.get("structured_outputs", {}).get("json") if "structured_outputs" in body else body.get("guided_json")
    if guided is None and isinstance(body.get("response_format"), dict):
        guided = body["response_format"].get("json_schema", {}).get("schema")
    allowed = list((guided or {}).get("properties", {}).get("action", {}).get("enum", ["ignore"]))
    action = next((a for a in allowed if a != "ignore"), allowed[0])
    return json.dumps({"action": action, "params": {"message": MESSAGE}, "rationale": RATIONALE, "confidence": 0.8})


def metrics_text(replica: Replica, model: str) -> str:
    s = replica.stats()
    labels = f'{{engine="0",model_name="{model}"}}'
    lines = []
    for name, doc in COUNTERS:
        lines += [f"# HELP vllm:{name} {doc}", f"# TYPE vllm:{name} counter", f"vllm:{name}_total{labels} {float(s[name])}"]
    for name, doc, value in (("num_requests_running", "Number of requests in model execution batches.", s["running"]),
                             ("num_requests_waiting", "Number of requests waiting to be processed.", s["waiting"]),
                             ("kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", s["kv_usage"])):
        lines += [f"# HELP vllm:{name} {doc}", f"# TYPE vllm:{name} gauge", f"vllm:{name}{labels} {float(value)}"]
    return "\n".join(lines) + "\n"


class SimServer(ThreadingHTTPServer):
    """One replica's HTTP front."""

    daemon_threads = True
    request_queue_size = 256  # the worker may open hundreds of connections at once

    def __init__(self, replica: Replica, model: str, rng: random.Random) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.replica, self.model, self.rng, self.rng_lock = replica, model, rng, threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def completion_tokens(self, max_tokens: int) -> int:
        c = self.replica.config
        with self.rng_lock:
            drawn = round(c.completion_median * math.exp(self.rng.gauss(0.0, c.completion_sigma)))
        return max(1, min(max_tokens, max(c.completion_min, drawn)))


class Handler(BaseHTTPRequestHandler):
    server: SimServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: thousands of requests
        pass

    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"object": "error", "message": message, "type": "BadRequestError", "code": status})

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, "", "text/plain")
        elif self.path == "/metrics":
            self._send(200, metrics_text(self.server.replica, self.server.model), "text/plain; version=0.0.4")
        elif self.path == "/sim/stats":
            self._send(200, self.server.replica.stats())
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        except ValueError as exc:
            return self._error(400, f"invalid JSON body: {exc}")
        chat = self.path == "/v1/chat/completions"
        if chat or (self.path == "/tokenize" and "messages" in body):
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return self._error(400, "messages must be a non-empty list")
            prompt = "\n".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        elif self.path in ("/v1/completions", "/tokenize"):
            prompt = body.get("prompt")
            if not isinstance(prompt, str) or not prompt:
                return self._error(400, "prompt must be a non-empty string")
        else:
            return self._error(404, f"no route {self.path}")
        replica, data = self.server.replica, prompt.encode("utf-8")
        count, limit = replica.tokens(data), replica.config.max_model_len
        if self.path == "/tokenize":
            step = replica.config.bytes_per_token
            return self._send(200, {"count": count, "max_model_len": limit,
                                    "tokens": [int.from_bytes(data[i:i + step], "big") for i in range(0, len(data), step)]})
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        if count + max_tokens > limit:
            return self._error(400, f"This model's maximum context length is {limit} tokens. However, you requested "
                                    f"{count + max_tokens} tokens ({count} in the messages, {max_tokens} in the completion).")
        seq = replica.submit(data, self.server.completion_tokens(max_tokens))
        seq.done.wait()
        text = decision_text(body)
        usage = {"prompt_tokens": count, "completion_tokens": seq.completion_tokens,
                 "total_tokens": count + seq.completion_tokens}
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
        self._send(200, {"id": f"sim-{id(seq):x}", "object": "chat.completion" if chat else "text_completion",
                         "created": int(time.time()), "model": self.server.model, "choices": [choice], "usage": usage})


class Simulator:
    """Several replicas in one process, each its own server and engine thread."""

    def __init__(self, replicas: int = 1, config: SimConfig | None = None, model: str = "Qwen/Qwen3-8B") -> None:
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {replicas}")
        self.config = config or SimConfig()
        self.servers = [SimServer(Replica(self.config, i), model, random.Random(self.config.seed + i))
                        for i in range(replicas)]
        self.threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
                        for s in self.servers]

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    def start(self) -> Simulator:
        for server, thread in zip(self.servers, self.threads, strict=True):
            server.replica.start()
            thread.start()
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.replica.stop()
            server.server_close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Serve until stdin closes; prints {"urls": [...]} as the first stdout line."""
    parser = argparse.ArgumentParser(prog="python -m bench.serving_sim", description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--config", default="{}", help="JSON object of SimConfig fields to override")
    args = parser.parse_args(argv)
    sim = Simulator(args.replicas, SimConfig(**json.loads(args.config))).start()
    print(json.dumps({"urls": sim.urls}), flush=True)
    sys.stdin.read()  # the parent closes our stdin to stop us
    sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
