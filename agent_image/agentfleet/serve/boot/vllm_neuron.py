"""vLLM Neuron engine (Trn2/Trn3): `vllm serve` on loopback, NEFFs cached under VLLM_CACHE_ROOT.

The vLLM Neuron plugin (vllm-neuron 0.24.0.1.1.0 in Neuron 2.32) compiles with torch.compile
during server warm-up, one NEFF per bucket, into `$VLLM_CACHE_ROOT/neuron/compile_cache/<hash>/`;
with VLLM_NEURON_BACKEND=neuron_native the traced graphs (precompile cache) land there too.
So "compile" = start the server with VLLM_CACHE_ROOT set to the artifact folder, wait until
/health answers, stop it; "load" = the same start with the folder already filled. The plugin
is found through vLLM's platform-plugin entry point, so no `--device` flag is passed (vLLM
dropped it). NEURON_COMPILED_ARTIFACTS belongs to the older NxD-Inference integration
(vLLM 0.16 DLC, Trn1/Inf2) and is not used here. Weights are not in the artifact: the
server needs them at every start. Runs only in the Neuron vLLM container on Trn2/Trn3.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from agentfleet.ops import logs
from agentfleet.serve.model.base import GenerationRequest, GenerationResult, ModelBackend
from agentfleet.spec.settings import Settings

log = logs.get(__name__)

SERVER_START_TIMEOUT_S = 3 * 3600  # a cold compile of a large model can take an hour or more
ClientFactory = Callable[[str, Settings, Path], ModelBackend]


def serve_command(settings: Settings, weights: Path, port: int) -> list[str]:
    return [
        "vllm", "serve", str(weights),
        "--served-model-name", settings.model_id,
        "--tensor-parallel-size", str(settings.tensor_parallel_degree),
        "--max-num-seqs", str(settings.batch_size),
        "--max-model-len", str(settings.sequence_length),
        "--host", "127.0.0.1", "--port", str(port),
    ]


def serve_env(artifact_dir: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["VLLM_CACHE_ROOT"] = str(artifact_dir)
    env["VLLM_NEURON_BACKEND"] = "neuron_native"  # turns the precompile (trace) cache on, see module doc
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class VllmServer:
    """One `vllm serve` child process; `wait_ready` polls GET /health and logs progress."""

    def __init__(self, command: list[str], env: dict[str, str], port: int) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        log.info("starting vllm server", extra={"command": " ".join(command)})
        self.process = subprocess.Popen(command, env=env)

    def wait_ready(self, timeout_s: float = SERVER_START_TIMEOUT_S, poll_s: float = 2.0) -> None:
        start = last_log = time.monotonic()
        delay = 0.1  # short first polls: a warm start is seconds, a cold compile is an hour
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"vllm server exited with code {self.process.returncode} before it was ready")
            try:
                with urllib.request.urlopen(self.base_url + "/health", timeout=5) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                pass
            now = time.monotonic()
            if now - start > timeout_s:
                self.stop()
                raise TimeoutError(f"vllm server not ready after {timeout_s:.0f} s")
            if now - last_log >= 60:
                last_log = now
                log.info("vllm server warming up (compiling on a cache miss)", extra={"elapsed_s": round(now - start)})
            time.sleep(delay)
            delay = min(poll_s, delay * 2)

    def stop(self, timeout_s: float = 60) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _openai_client(base_url: str, settings: Settings, weights: Path) -> ModelBackend:
    """The model helper's OpenAI-compatible client, counting tokens with the served model's tokenizer
    (an estimate could let an over-long prompt through, which vLLM rejects with 400)."""
    from transformers import AutoTokenizer

    from agentfleet.serve.model.openai_http import OpenAIHTTPBackend

    tokenizer = AutoTokenizer.from_pretrained(str(weights))
    return OpenAIHTTPBackend(
        base_url, settings.model_id, batch_size=settings.batch_size,
        max_prompt_tokens=settings.sequence_length - settings.max_new_tokens,
        max_new_tokens=settings.max_new_tokens,
        count_tokens=lambda text: len(tokenizer.encode(text, add_special_tokens=False)),
    )


class VllmNeuronEngine:
    name = "vllm-neuron"
    weights_for_compile = True
    weights_for_load = True

    def __init__(self, settings: Settings, client_factory: ClientFactory = _openai_client) -> None:
        self.settings, self.client_factory = settings, client_factory

    def versions(self) -> tuple[str, str]:
        from agentfleet.serve.boot.engine_api import package_version

        return package_version("vllm-neuron"), package_version("neuronx-cc")

    def _start(self, artifact_dir: Path, weights: Path | None) -> VllmServer:
        if weights is None:
            raise ValueError("vllm serve needs the model weights on local disk")
        artifact_dir.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        return VllmServer(serve_command(self.settings, weights, port), serve_env(artifact_dir), port)

    def compile(self, *, weights: Path | None, out_dir: Path) -> None:
        server = self._start(out_dir, weights)
        try:
            server.wait_ready()
        finally:
            server.stop()

    def load(self, *, artifact_dir: Path, weights: Path | None) -> VllmNeuronBackend:
        server = self._start(artifact_dir, weights)
        try:
            server.wait_ready()
            assert weights is not None  # _start checked it
            return VllmNeuronBackend(server, self.client_factory(server.base_url + "/v1", self.settings, weights))
        except BaseException:
            server.stop()
            raise


class VllmNeuronBackend:
    """A ModelBackend over the local vLLM server; requests go through the OpenAI-compatible client."""

    name = "vllm-neuron"

    def __init__(self, server: VllmServer, client: ModelBackend) -> None:
        self.server, self.client = server, client
        self.model_id = client.model_id
        self.batch_size = client.batch_size
        self.max_prompt_tokens = client.max_prompt_tokens

    def count_tokens(self, text: str) -> int:
        return self.client.count_tokens(text)

    def generate(self, requests: Sequence[GenerationRequest]) -> GenerationResult:
        return self.client.generate(requests)

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            self.server.stop()
