"""Engine plumbing that runs without Neuron: the vLLM server lifecycle (against a stand-in `vllm`
executable that serves /health and writes NEFF-like files into VLLM_CACHE_ROOT), and weights."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from boot_fakes import BootAws, FakeBackend

from agentfleet.serve.boot.vllm_neuron import VllmNeuronEngine, serve_command
from agentfleet.serve.boot.weights import fetch_weights, hf_token
from agentfleet.spec.settings import Settings

FAKE_VLLM = """#!{python}
# Stand-in for `vllm serve`: record argv/env, "compile" into VLLM_CACHE_ROOT, serve GET /health.
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
root = os.environ["VLLM_CACHE_ROOT"]
neff = os.path.join(root, "neuron", "compile_cache", "abc", "model.neff")
with open(os.path.join(os.path.dirname(root), "calls.jsonl"), "a") as log:
    log.write(json.dumps({{"argv": sys.argv[1:], "root": root, "cached": os.path.exists(neff),
                          "backend": os.environ.get("VLLM_NEURON_BACKEND")}}) + "\\n")
os.makedirs(os.path.dirname(neff), exist_ok=True)
open(neff, "wb").write(b"NEFF")
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404); self.end_headers()
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])), H).serve_forever()
"""


@pytest.fixture
def fake_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "vllm"
    script.write_text(FAKE_VLLM.format(python=sys.executable), encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def test_serve_command_uses_the_compiled_shape() -> None:
    settings = Settings(model_id="meta-llama/Llama-3.1-8B-Instruct", batch_size=8, sequence_length=2048,
                        tensor_parallel_degree=4)
    cmd = serve_command(settings, Path("/w"), 9000)
    assert cmd[:3] == ["vllm", "serve", "/w"]
    pairs = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    assert pairs == {"--served-model-name": "meta-llama/Llama-3.1-8B-Instruct", "--tensor-parallel-size": "4",
                     "--max-num-seqs": "8", "--max-model-len": "2048", "--host": "127.0.0.1", "--port": "9000"}


def test_vllm_compile_then_load_reuses_the_cache_root(fake_vllm: Path) -> None:
    urls: list[str] = []

    def client(base_url: str, settings: Settings, weights: Path) -> Any:
        urls.append(base_url)
        return FakeBackend(fake_vllm)

    engine = VllmNeuronEngine(Settings(tensor_parallel_degree=2), client_factory=client)
    artifacts, weights = fake_vllm / "artifacts", fake_vllm / "weights"
    engine.compile(weights=weights, out_dir=artifacts)
    backend = engine.load(artifact_dir=artifacts, weights=weights)
    server = backend.server
    assert server.process.poll() is None and urls == [server.base_url + "/v1"]
    backend.close()
    assert server.process.poll() is not None, "close() stops the server"
    calls = [json.loads(line) for line in (fake_vllm / "calls.jsonl").read_text().splitlines()]
    assert [c["cached"] for c in calls] == [False, True], "load found what compile wrote"
    assert {c["root"] for c in calls} == {str(artifacts)} and {c["backend"] for c in calls} == {"neuron_native"}
    with pytest.raises(ValueError, match="weights"):
        engine.compile(weights=None, out_dir=artifacts)


@pytest.mark.integration
def test_weights_from_the_s3_mirror(boot_aws: BootAws, tmp_path: Path) -> None:
    prefix = f"weights/{boot_aws.revision}/"
    for name, body in {"config.json": b"{}", "model-00001.safetensors": b"x" * 1000, "sub/tok.json": b"[]"}.items():
        boot_aws.s3.put_object(Bucket=boot_aws.bucket, Key=prefix + name, Body=body)
    settings = boot_aws.settings(tmp_path, weights_prefix=prefix)
    dest = fetch_weights(settings, tmp_path / "w", s3_client=boot_aws.s3, secrets_client=None)
    assert (dest / "model-00001.safetensors").stat().st_size == 1000 and (dest / "sub" / "tok.json").is_file()
    empty = boot_aws.settings(tmp_path, weights_prefix="weights/none/")
    with pytest.raises(FileNotFoundError, match="empty"):
        fetch_weights(empty, tmp_path / "w2", s3_client=boot_aws.s3, secrets_client=None)


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
