"""Chat prompts: the request shape of /v1/chat/completions, token counting with the chat template so a
prompt at budget is never rejected (BOS once), the CPU backend's rendering, prefix-cache counters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from agentfleet.decide.prompt import build_messages, build_prompt
from agentfleet.serve.model.base import GenerationRequest
from agentfleet.serve.model.chat import chat_counter, plain_render
from agentfleet.serve.model.cpu import TransformersBackend
from agentfleet.serve.model.openai_http import ModelServerError, OpenAIHTTPBackend
from agentfleet.serve.model.vllm_metrics import HitRateWindow, fetch_prefix_counters, parse_prefix_counters
from agentfleet.spec.catalog import AgentSpec
from tests.model.loopback import QuietHandler, serve

# A chat template that writes BOS itself, as Llama-style templates do.
TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
MAX_MODEL_LEN, MAX_TOKENS = 600, 40
AGENT = AgentSpec(name="ci-triage", system_prompt="You triage CI results.", subscribes_to=("ci.failed",),
                  allowed_actions=("notify", "ignore"), rate_limit_per_minute=30)


@pytest.fixture(scope="module")
def tokenizer(tiny_dir: Path) -> Any:
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    tok.chat_template = TEMPLATE
    return tok


class StrictServer:
    """Like vLLM's chat endpoint: renders the template, tokenizes without adding special tokens, and
    answers 400 when prompt + max_tokens exceeds max_model_len; serves /metrics too."""

    def __init__(self, tokenizer: Any) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.token_counts: list[int] = []
        owner = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                self.send(200, b'vllm:prefix_cache_queries_total{engine="0",model_name="m"} 200.0\n'
                                b'vllm:prefix_cache_hits_total{engine="0",model_name="m"} 150.0\n')

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.bodies.append(body)
                owner.paths.append(self.path)
                text = tokenizer.apply_chat_template(body["messages"], tokenize=False, add_generation_prompt=True)
                ids = tokenizer(text, add_special_tokens=body.get("add_special_tokens", False))["input_ids"]
                owner.token_counts.append(len(ids))
                if len(ids) + body["max_tokens"] > MAX_MODEL_LEN:
                    self.send(400, json.dumps({"error": {"message": f"{len(ids)} prompt tokens"}}).encode())
                    return
                content = json.dumps({"action": body["structured_outputs"]["json"]["properties"]["action"]["enum"][0]})
                self.send(200, json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
                                            "usage": {"prompt_tokens": len(ids), "completion_tokens": 4}}).encode())

        self.httpd, self.url = serve(Handler)


@pytest.fixture
def strict(tokenizer: Any) -> Iterator[StrictServer]:
    server = StrictServer(tokenizer)
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def _memory(n: int) -> list[dict[str, Any]]:
    return [{"at": f"2026-12-01T10:{i:02d}:00Z", "note": f"build {i} of service-{i % 7} failed in stage test-{i}"}
            for i in range(n)]


def test_a_chat_prompt_fitted_with_the_template_is_never_rejected(tokenizer: Any, strict: StrictServer) -> None:
    budget = MAX_MODEL_LEN - MAX_TOKENS
    count_messages = chat_counter(tokenizer)
    backend = OpenAIHTTPBackend(strict.url, "m", batch_size=2, max_prompt_tokens=budget, max_new_tokens=MAX_TOKENS,
                                count_messages=count_messages, chat_template_kwargs={"enable_thinking": False},
                                max_retries=0)
    events = [{"id": "e1", "type": "ci.failed", "subject": "repo/api", "payload": {"job": "unit", "log": "x" * 50}}]
    messages = build_messages(AGENT, events, _memory(60), [], backend.count_messages, budget)
    backend.generate([GenerationRequest(plain_render(messages), AGENT.allowed_actions, "ci-triage", messages)])
    assert strict.paths == ["/v1/chat/completions"]
    body = strict.bodies[0]
    assert [m["role"] for m in body["messages"]] == ["system", "user"] and "prompt" not in body
    assert body["messages"][0]["content"].startswith("### System\nYou are the agent \"ci-triage\"")
    assert "### Memory" in body["messages"][1]["content"] and body["chat_template_kwargs"] == {"enable_thinking": False}
    assert body["structured_outputs"]["json"]["properties"]["action"]["enum"] == ["notify", "ignore"]
    served = strict.token_counts[0]
    assert budget - 40 < served <= budget, "memory was trimmed to the budget as the template counts it"
    ids = tokenizer(tokenizer.apply_chat_template(body["messages"], tokenize=False, add_generation_prompt=True),
                    add_special_tokens=False)["input_ids"]
    assert ids.count(tokenizer.bos_token_id) == 1 and count_messages(messages) == served, "BOS counted once"
    # Fitted as plain text, the same content overflows once the template wraps it: the server says 400.
    text = build_prompt(AGENT, events, _memory(60), [], lambda t: len(tokenizer(t)["input_ids"]), budget)
    system_end = text.index("### Memory")
    plain = (("system", text[:system_end]), ("user", text[system_end:]))
    with pytest.raises(ModelServerError, match="400"):
        backend.generate([GenerationRequest(text, AGENT.allowed_actions, "ci-triage", plain)])
    backend.close()


def test_prefix_cache_hit_rate_per_replica_from_metrics(strict: StrictServer) -> None:
    text = "# HELP x\nvllm:prefix_cache_queries_total{engine=\"0\"} 100\nvllm:prefix_cache_hits_total{engine=\"0\"} 25\n" \
           "vllm:prefix_cache_queries_total{engine=\"1\"} 100\nvllm:prefix_cache_hits_total{engine=\"1\"} 75\n"
    assert parse_prefix_counters(text) == (100.0, 200.0)
    assert parse_prefix_counters("vllm:num_requests_running 3\n") is None
    assert fetch_prefix_counters(strict.url) == (150.0, 200.0)
    backend = OpenAIHTTPBackend([strict.url, "http://127.0.0.1:9"], "m", batch_size=1, max_prompt_tokens=10,
                                max_new_tokens=1)
    assert backend.prefix_cache_hit_rate() == [0.75, None], "the second replica exposes nothing: no guess"
    backend.close()
    window = HitRateWindow(1)
    assert window.update(0, (10.0, 20.0)) == 0.5
    assert window.update(0, (40.0, 50.0)) == 1.0, "since the previous reading"
    assert window.update(0, (1.0, 4.0)) == 0.25, "a restarted server's counters start again"


def test_cpu_backend_renders_messages_with_the_plain_rendering_and_counts_them(backend: TransformersBackend) -> None:
    messages = build_messages(AGENT, [{"id": "e1", "type": "ci.failed", "subject": "s", "payload": {}}], [], [],
                              backend.count_messages, backend.max_prompt_tokens)
    text = build_prompt(AGENT, [{"id": "e1", "type": "ci.failed", "subject": "s", "payload": {}}], [], [],
                        backend.count_tokens, backend.max_prompt_tokens)
    assert plain_render(messages) == text and backend.count_messages(messages) == backend.count_tokens(text)
    out = backend.generate([GenerationRequest("", AGENT.allowed_actions, "ci-triage", messages)])
    assert out.prompt_tokens[0] == backend.count_tokens(text) + 1, "BOS once"


def test_request_for_uses_chat_where_the_backend_counts_messages(backend: TransformersBackend) -> None:
    from agentfleet.decide.prompt import request_for

    events = [{"id": "e1", "type": "ci.failed", "subject": "repo/api", "payload": {}}]
    chat = request_for(AGENT, events, [], [], backend, subject="repo/api")
    assert chat.affinity_key == "ci-triage/repo/api" and [r for r, _ in chat.messages] == ["system", "user"]
    assert chat.prompt == plain_render(chat.messages)
    text_only = type("TextOnly", (), {"count_tokens": backend.count_tokens, "max_prompt_tokens": 500})()
    plain = request_for(AGENT, events, [], [], text_only)  # type: ignore[arg-type]
    assert plain.messages == () and plain.affinity_key == "ci-triage" and plain.prompt == chat.prompt
