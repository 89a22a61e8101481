"""create_backend picks the backend by Settings.engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentfleet.serve.model.cpu import TransformersBackend
from agentfleet.serve.model.factory import create_backend
from agentfleet.serve.model.openai_http import OpenAIHTTPBackend, estimate_tokens
from agentfleet.spec.catalog import ConfigError
from agentfleet.spec.settings import Settings

from .conftest import settings


def test_transformers_cpu_loads_the_local_model(tiny_dir: Path) -> None:
    backend = create_backend(settings(engine="transformers-cpu", local_model_dir=str(tiny_dir)))
    assert isinstance(backend, TransformersBackend)
    assert backend.count_tokens("notify") == 1


def test_openai_http_client_is_configured_from_settings() -> None:
    backend = create_backend(settings(engine="openai-http", openai_base_url="http://localhost:8000/",
                                      model_id="no/such-model-here"))
    assert isinstance(backend, OpenAIHTTPBackend)
    try:
        assert backend.url == "http://localhost:8000/v1/completions"
        assert backend.max_prompt_tokens == 1024 - 96
        assert backend.count_tokens("x" * 30) == estimate_tokens("x" * 30) == 10  # no tokenizer on disk
    finally:
        backend.close()


def test_unknown_engine_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="engine must be one of"):
        create_backend(settings(engine="tpu"))


def test_neuron_engines_delegate_to_the_boot_module(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentfleet.serve.boot import load

    calls: list[str] = []
    sentinel = object()

    def record(s: Settings) -> object:
        calls.append(s.engine)
        return sentinel

    monkeypatch.setattr(load, "load_backend", record)
    assert create_backend(settings(engine="optimum-neuron")) is sentinel
    assert create_backend(settings(engine="vllm-neuron")) is sentinel
    assert calls == ["optimum-neuron", "vllm-neuron"]


def test_openai_http_takes_several_replicas_as_comma_separated_urls() -> None:
    backend = create_backend(settings(engine="openai-http", model_id="no/such-model-here", max_num_seqs=4,
                                      openai_base_url="http://127.0.0.1:8101, http://127.0.0.1:8102/v1"))
    assert isinstance(backend, OpenAIHTTPBackend)
    try:
        assert backend.api_roots == ["http://127.0.0.1:8101/v1", "http://127.0.0.1:8102/v1"]
        assert backend.slots == 8 and backend.replica_load() == [(0, 4), (0, 4)]
    finally:
        backend.close()
