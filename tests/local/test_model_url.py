"""`--model-url URL --model NAME`: the local fleet's workers use the user's OpenAI-compatible server
through the openai-http engine. Checked end to end from the command line to a real HTTP server on
loopback: the settings the workers get, the request they send, the decision they read back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentfleet.local import fleet
from agentfleet.serve.model.base import GenerationRequest
from agentfleet.serve.model.factory import create_backend
from agentfleet.spec.decisions import parse_decision
from agentfleet.spec.settings import resolve
from tests.local.openai_server import CompletionsServer


@pytest.fixture
def server() -> Iterator[tuple[CompletionsServer, str]]:
    srv = CompletionsServer()
    url = srv.start()
    yield srv, url
    srv.stop()


def test_workers_decide_through_the_users_server(server: tuple[CompletionsServer, str]) -> None:
    srv, url = server
    opts = fleet.parse_args(["--model-url", url, "--model", "qwen2.5:0.5b-instruct"])
    settings = resolve(document=fleet.model_settings(opts, None), env={})
    assert (settings.engine, settings.openai_base_url, settings.model_id) == ("openai-http", url, "qwen2.5:0.5b-instruct")
    backend = create_backend(settings)
    try:
        result = backend.generate([GenerationRequest("alarm: payments-api p99 high", ("page_oncall", "ignore"))])
    finally:
        backend.close()
    decision = parse_decision(result.texts[0])
    assert decision.action == "page_oncall" and result.completion_tokens[0] > 0
    (body,) = srv.requests
    assert srv.paths == ["/v1/completions"]
    assert body["model"] == "qwen2.5:0.5b-instruct" and body["prompt"] == "alarm: payments-api p99 high"
    assert body["max_tokens"] == settings.max_new_tokens and body["temperature"] == 0.0
    assert body["structured_outputs"]["json"]["properties"]["action"]["enum"] == ["page_oncall", "ignore"]


def test_the_built_in_model_stays_the_default() -> None:
    opts = fleet.parse_args([])
    assert fleet.model_settings(opts, Path("/m"))["engine"] == "transformers-cpu"
    assert fleet.model_settings(fleet.parse_args(["--model-url", "http://127.0.0.1:1"]), None)["model_id"] == \
        fleet.DEFAULT_SERVED_MODEL


@pytest.mark.parametrize(("argv", "words"), [
    (["--model", "llama3"], "--model-url"),
    (["--model-url", "localhost:11434"], "http:// or https://"),
    (["--model-url", "http://127.0.0.1:8000", "--finetune-steps", "5"], "built-in model"),
])
def test_bad_model_flags_are_refused(argv: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        fleet.parse_args(argv)
    assert words in capsys.readouterr().err
