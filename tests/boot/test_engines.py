"""Engine plumbing that runs without Neuron: the vLLM serve command and environment, and weights."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from boot_fakes import BootAws

from agentfleet.serve.boot.vllm_neuron import artifact_config, serve_command, serve_env
from agentfleet.serve.boot.weights import SERVED_FILES, fetch_weights, hf_token, served
from agentfleet.spec.settings import Settings


def test_serve_command_uses_the_compiled_shape_and_on_device_sampling() -> None:
    settings = Settings(model_id="meta-llama/Llama-3.1-8B-Instruct", batch_size=8, sequence_length=2048,
                        tensor_parallel_degree=4)
    cmd = serve_command(settings, Path("/w"), 9000)
    assert cmd[:3] == ["vllm", "serve", "/w"]
    pairs = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    # Structured outputs are enforced only by the on-device sampler (vllm-neuron features-guide.md).
    assert json.loads(pairs.pop("--additional-config")) == {
        "neuron_config": {"on_device_sampling_config": {"all_greedy": True}}}
    assert pairs == {"--served-model-name": "meta-llama/Llama-3.1-8B-Instruct", "--tensor-parallel-size": "4",
                     "--max-num-seqs": "8", "--max-model-len": "2048", "--host": "127.0.0.1", "--port": "9000"}


def test_serve_env_sets_the_timeouts_and_no_unsupported_backend() -> None:
    settings = Settings(compile_timeout_seconds=5400)
    base = {"VLLM_NEURON_BACKEND": "x", "VLLM_NEURON_DISABLE_WARMUP_COMPILE": "1", "PATH": "/bin"}
    env = serve_env(Path("/a"), settings, cache_only=False, base={"PATH": "/bin"})
    assert env["VLLM_CACHE_ROOT"] == "/a" and env["VLLM_ENGINE_READY_TIMEOUT_S"] == "5400"
    assert env["NEURON_LIBTORCH_COMPILATION_TIMEOUT"] == env["VLLM_NEURON_COMPILATION_TIMEOUT"] == "5400"
    assert "VLLM_NEURON_BACKEND" not in env, "no 0.24 document names a neuron_native backend"
    assert "VLLM_NEURON_DISABLE_WARMUP_COMPILE" not in serve_env(Path("/a"), settings, cache_only=False, base=base)
    assert serve_env(Path("/a"), settings, cache_only=True, base=base)["VLLM_NEURON_DISABLE_WARMUP_COMPILE"] == "1"


def test_artifact_config_has_every_shaping_flag_and_env() -> None:
    settings = Settings(batch_size=8, sequence_length=2048, tensor_parallel_degree=4)
    config = artifact_config(settings, base={"NEURON_CC_FLAGS": "-O2", "HOME": "/root"})
    assert "--max-num-seqs 8" in config["serve_flags"] and "on_device_sampling_config" in config["serve_flags"]
    assert "--port" not in config["serve_flags"] and "/w" not in config["serve_flags"]
    assert config["NEURON_CC_FLAGS"] == "-O2" and "HOME" not in config
    assert artifact_config(settings, base={"NEURON_CC_FLAGS": "-O1"}) != config


def test_only_served_files_are_selected() -> None:
    wanted = ["model-00001-of-00002.safetensors", "model.safetensors.index.json", "config.json",
              "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
    unwanted = ["original/consolidated.00.pth", "original/tokenizer.model", "pytorch_model.bin", "README.md",
                "model.gguf", "onnx/model.onnx", ".gitattributes", "LICENSE.txt"]
    assert [name for name in wanted if not served(name)] == []
    assert [name for name in unwanted if served(name)] == []


@pytest.mark.integration
def test_weights_from_the_s3_mirror_skip_what_no_server_loads(boot_aws: BootAws, tmp_path: Path) -> None:
    prefix = f"weights/{boot_aws.revision}/"
    objects = {"config.json": b"{}", "model-00001.safetensors": b"x" * 1000, "tokenizer.json": b"[]",
               "original/consolidated.00.pth": b"y" * 5000, "pytorch_model.bin": b"z" * 3000}
    for name, body in objects.items():
        boot_aws.s3.put_object(Bucket=boot_aws.bucket, Key=prefix + name, Body=body)
    settings = boot_aws.settings(tmp_path, weights_prefix=prefix)
    dest = fetch_weights(settings, tmp_path / "w", s3_client=boot_aws.s3, secrets_client=None)
    assert (dest / "model-00001.safetensors").stat().st_size == 1000 and (dest / "tokenizer.json").is_file()
    assert not (dest / "original").exists() and not (dest / "pytorch_model.bin").exists()
    empty = boot_aws.settings(tmp_path, weights_prefix="weights/none/")
    with pytest.raises(FileNotFoundError, match="empty"):
        fetch_weights(empty, tmp_path / "w2", s3_client=boot_aws.s3, secrets_client=None)


def test_weights_from_the_hub_ask_only_for_served_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    fake_hub = types.ModuleType("huggingface_hub")
    fake_hub.snapshot_download = lambda **kwargs: calls.append(kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake_hub)
    settings = Settings(model_id="meta-llama/Llama-3.2-1B-Instruct", model_revision="r1")
    fetch_weights(settings, tmp_path / "w", s3_client=None, secrets_client=None)
    assert calls[0]["repo_id"] == "meta-llama/Llama-3.2-1B-Instruct" and calls[0]["revision"] == "r1"
    assert calls[0]["allow_patterns"] == list(SERVED_FILES) and calls[0]["ignore_patterns"] == ["original/*"]


class FakeSecrets:
    def __init__(self, value: str) -> None:
        self.value, self.asked = value, list[str]()

    def get_secret_value(self, SecretId: str) -> dict[str, str]:
        self.asked.append(SecretId)
        return {"SecretString": self.value}


def test_hub_token_comes_from_secrets_manager() -> None:
    secrets = FakeSecrets(" hf_abc \n")
    assert hf_token(secrets, "fleet/hf-token") == "hf_abc" and secrets.asked == ["fleet/hf-token"]
    with pytest.raises(ValueError, match="no Hugging Face token"):
        hf_token(FakeSecrets(""), "fleet/hf-token")
