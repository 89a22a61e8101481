"""The vLLM engine against the fake `vllm` executable (tests/boot/fake_bin/vllm): a real child process
that compiles into VLLM_CACHE_ROOT, honours VLLM_ENGINE_READY_TIMEOUT_S, serves the OpenAI endpoints on
loopback and keeps its NeuronCores a few seconds after it exits."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from boot_fakes import FakeBackend

from agentfleet.serve.boot.vllm_neuron import VllmNeuronEngine
from agentfleet.serve.model.base import GenerationRequest
from agentfleet.serve.model.openai_http import OpenAIHTTPBackend
from agentfleet.spec.settings import Settings


def _settings(timeout_s: int, **more: Any) -> Settings:
    """Any free port per replica: suites run side by side on this machine."""
    return Settings(compile_timeout_seconds=timeout_s, vllm_base_port=0, **more)


def _calls(state: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (state / "vllm_calls.jsonl").read_text().splitlines()]


def _http_client(base_url: str, settings: Settings, weights: Path) -> OpenAIHTTPBackend:
    return OpenAIHTTPBackend(base_url, settings.model_id, batch_size=1, max_prompt_tokens=64, max_new_tokens=8,
                             count_tokens=lambda text: len(text.split()))


def test_the_compile_server_serves_without_a_restart(neuron_fakes: Path, tmp_path: Path) -> None:
    engine = VllmNeuronEngine(_settings(60), client_factory=_http_client)
    artifacts = tmp_path / "artifacts"
    engine.compile(weights=tmp_path / "weights", out_dir=artifacts)
    backend = engine.load(artifact_dir=artifacts, weights=tmp_path / "weights")
    try:
        out = backend.generate([GenerationRequest("health probe", ("ignore",))])
        assert out.completion_tokens[0] >= 1 and "ignore" in out.texts[0], "POST /v1/completions answered"
        calls = _calls(neuron_fakes)
        assert len(calls) == 1, "one server compiled and serves: no second start while cores are held"
        assert calls[0]["env"]["VLLM_CACHE_ROOT"] == str(artifacts)
        assert calls[0]["env"]["VLLM_ENGINE_READY_TIMEOUT_S"] == "60"
        assert calls[0]["env"]["VLLM_NEURON_DISABLE_WARMUP_COMPILE"] is None, "a compile must be allowed to compile"
        assert calls[0]["env"]["VLLM_NEURON_BACKEND"] is None
    finally:
        backend.close()
    assert not backend.server.alive()


def test_restart_waits_until_the_cores_are_free(neuron_fakes: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_VLLM_RELEASE_S", "2")
    engine = VllmNeuronEngine(_settings(60), client_factory=lambda *a: FakeBackend(tmp_path))
    artifacts, weights = tmp_path / "artifacts", tmp_path / "weights"
    engine.compile(weights=weights, out_dir=artifacts)
    engine.release()  # stops the whole process group and waits for neuron-ls to show no holder
    started = time.monotonic()
    backend = engine.load(artifact_dir=artifacts, weights=weights)  # cache hit: a second server
    backend.close()
    calls = _calls(neuron_fakes)
    assert [c["cached"] for c in calls] == [False, True] and calls[1]["env"]["VLLM_NEURON_DISABLE_WARMUP_COMPILE"] == "1"
    assert time.monotonic() - started < 30
    assert "--json-output" in (neuron_fakes / "neuron_ls_calls.txt").read_text()


def test_a_compile_longer_than_the_ready_timeout_fails(neuron_fakes: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_VLLM_COMPILE_S", "3")
    monkeypatch.setenv("FAKE_VLLM_RELEASE_S", "0")
    short = VllmNeuronEngine(_settings(1), client_factory=lambda *a: FakeBackend(tmp_path))
    with pytest.raises(RuntimeError, match="exited with code 1 before it was ready"):
        short.compile(weights=tmp_path / "w", out_dir=tmp_path / "a1")
    long = VllmNeuronEngine(_settings(30), client_factory=lambda *a: FakeBackend(tmp_path))
    long.compile(weights=tmp_path / "w", out_dir=tmp_path / "a2")
    long.release()
    assert [c["env"]["VLLM_ENGINE_READY_TIMEOUT_S"] for c in _calls(neuron_fakes)] == ["1", "30"]


def test_a_cache_hit_that_misses_fails_loudly(neuron_fakes: Path, tmp_path: Path) -> None:
    engine = VllmNeuronEngine(_settings(30), client_factory=lambda *a: FakeBackend(tmp_path))
    empty = tmp_path / "downloaded-but-wrong"
    with pytest.raises(RuntimeError, match="before it was ready"):
        engine.load(artifact_dir=empty, weights=tmp_path / "w")
    assert not (empty / "neuron").exists(), "no silent recompile"
