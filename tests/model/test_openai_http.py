"""OpenAIHTTPBackend against a real HTTP server on loopback that speaks the OpenAI completions format."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from agentfleet.serve.model.base import GenerationRequest
from agentfleet.serve.model.openai_http import ModelServerError, OpenAIHTTPBackend
from agentfleet.spec.decisions import parse_decision
from tests.model.loopback import QuietHandler, serve


class FakeServer:
    """Records each request; answers with the first allowed action from the request's schema,
    after failing the first `fail_first` calls with `fail_status`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.fail_first = 0
        self.fail_status = 503
        self.lock = threading.Lock()
        owner = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner.lock:
                    owner.paths.append(self.path)
                    owner.requests.append(body)
                    failing = len(owner.requests) <= owner.fail_first
                if failing:
                    self._send(owner.fail_status, {"error": {"message": "overloaded"}}, {"Retry-After": "0"})
                    return
                if "structured_outputs" not in body:
                    self._send(400, {"error": {"message": "guided_json was removed in vLLM 0.12"}})
                    return
                schema = body["structured_outputs"]["json"]
                action = schema["properties"]["action"]["enum"][0]
                text = json.dumps({"action": action, "params": {"message": "m"}, "rationale": "r", "confidence": 0.5})
                self._send(200, {
                    "id": "cmpl-1", "object": "text_completion", "model": body["model"],
                    "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
                    "usage": {"prompt_tokens": len(body["prompt"].split()), "completion_tokens": 17,
                              "total_tokens": len(body["prompt"].split()) + 17},
                })

            def _send(self, status: int, doc: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                self.send(status, json.dumps(doc).encode(), {"Content-Type": "application/json", **(headers or {})})

        self.httpd, self.url = serve(Handler)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    yield fake
    fake.close()


def client(url: str, sleeps: list[float], **options: Any) -> OpenAIHTTPBackend:
    return OpenAIHTTPBackend(url, "Qwen/Qwen2.5-7B-Instruct", batch_size=4, max_prompt_tokens=3000,
                             max_new_tokens=128, timeout_s=5, backoff_s=0.01, sleep=sleeps.append, **options)


def test_request_shape_and_parsing(server: FakeServer) -> None:
    backend = client(server.url, [])
    reqs = [GenerationRequest(f"prompt number {i}", a) for i, a in
            enumerate([("notify", "ignore"), ("open_ticket",), ("ignore",), ("call_webhook", "notify"), ("notify",)])]
    result = backend.generate(reqs)
    backend.close()
    assert server.paths == ["/v1/completions"] * 5
    by_prompt = {r["prompt"]: r for r in server.requests}
    for req in reqs:
        body = by_prompt[req.prompt]
        assert body["model"] == "Qwen/Qwen2.5-7B-Instruct"
        assert body["max_tokens"] == 128 and body["temperature"] == 0.0
        schema = body["structured_outputs"]["json"]
        Draft202012Validator.check_schema(schema)
        assert schema["properties"]["action"]["enum"] == list(req.allowed_actions)
        assert "guided_json" not in body
    assert [parse_decision(t).action for t in result.texts] == [r.allowed_actions[0] for r in reqs]
    assert result.prompt_tokens == [3] * 5 and result.completion_tokens == [17] * 5
    assert result.latency_ms > 0 and result.timings["retries"] == 0


def test_retries_on_503_then_succeeds(server: FakeServer) -> None:
    server.fail_first = 2
    sleeps: list[float] = []
    backend = client(server.url, sleeps)
    result = backend.generate([GenerationRequest("p", ("notify",))])
    backend.close()
    assert parse_decision(result.texts[0]).action == "notify"
    assert len(server.requests) == 3 and result.timings["retries"] == 2
    assert len(sleeps) == 2 and sleeps[1] > 0


def test_client_errors_are_not_retried_and_retries_run_out(server: FakeServer) -> None:
    server.fail_first, server.fail_status = 1, 400
    backend = client(server.url, [])
    with pytest.raises(ModelServerError) as info:
        backend.generate([GenerationRequest("p", ("notify",))])
    assert info.value.status == 400 and len(server.requests) == 1
    server.fail_first, server.fail_status = 100, 429
    with pytest.raises(ModelServerError, match="after 3 attempts"):
        client(server.url, [], max_retries=2).generate([GenerationRequest("p", ("notify",))])
    backend.close()


def test_older_servers_get_guided_json(server: FakeServer) -> None:
    backend = client(server.url, [], structured_param="guided_json")
    with pytest.raises(ModelServerError, match="400"):  # the fake speaks only the current field
        backend.generate([GenerationRequest("p", ("ignore",))])
    backend.close()
    assert server.requests[0]["guided_json"]["properties"]["action"]["enum"] == ["ignore"]


def test_unreachable_server_is_retried_then_reported() -> None:
    sleeps: list[float] = []
    backend = client("http://127.0.0.1:9", sleeps, max_retries=1)
    with pytest.raises(ModelServerError, match="after 2 attempts"):
        backend.generate([GenerationRequest("p", ("notify",))])
    backend.close()
    assert len(sleeps) == 1
