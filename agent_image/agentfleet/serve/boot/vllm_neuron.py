"""vLLM Neuron engine (Trn2/Trn3): `vllm serve` on loopback, NEFFs cached under VLLM_CACHE_ROOT.

Facts this module depends on (vllm-neuron 0.24.0.1.1.0 in Neuron 2.32: aws-neuron/deep-learning-containers
vllm/inference/0.24.0.1.1.0/Dockerfile.neuronx clones vllm-project/vllm-neuron release-0.24.0.1.1.0 onto
vLLM 0.24.0; its docs are published in aws-neuron/aws-neuron-sdk vllm-neuron/docs, read 2026-12-01):
- NEFFs are compiled during server warm-up, one per bucket, into `$VLLM_CACHE_ROOT/neuron/compile_cache/`
  (docs/design/compilation/compilation_cache.md). So "compile" = start the server with VLLM_CACHE_ROOT
  set to the artifact folder and wait until /health answers; that same server then serves.
- `VLLM_NEURON_DISABLE_WARMUP_COMPILE=1` "treats a local cache miss as a fatal error" (RuntimeError)
  instead of compiling (compilation_cache.md, guides/reference-configuration.md): set on a cache hit,
  so an artifact that does not match fails the boot loudly instead of recompiling for an hour.
- vLLM gives up on a starting engine after VLLM_ENGINE_READY_TIMEOUT_S, default 600 s (vllm
  vllm/envs.py: "Timeout in seconds for waiting for engine cores to become ready during startup.
  Default is 600 seconds"); the Neuron tutorials raise it for big models (tutorial-gpt-oss.md: 5400).
  The per-NEFF compile timeout is NEURON_LIBTORCH_COMPILATION_TIMEOUT in reference-configuration.md
  and compilation_cache.md (default 600), VLLM_NEURON_COMPILATION_TIMEOUT in the quickstarts
  ("can exceed the default 600-second budget"); the docs use both names, so both are set.
  All three come from settings.compile_timeout_seconds.
- No VLLM_NEURON_BACKEND: no 0.24 document names that variable or a "neuron_native" backend (the
  compile backend is `vllm_neuron`, features-guide.md "Compilation"); the old setting is gone.
- Structured outputs are enforced by a grammar bitmask applied by the ON-DEVICE sampler; "with CPU
  sampling, the logit_mask is not applied" (features-guide.md, tool calling note). Whether on-device
  sampling is on by default the docs disagree (features-guide.md: "enabled by default";
  reference-configuration.md and design/vllm/additional-config.md: `on_device_sampling_config`
  default null = CPU sampling, "required for ... structured output enforcement"), so it is set
  explicitly, greedy as our requests are (temperature 0): `{"all_greedy": true}`
  (reference-configuration.md example; quickstart-online-serving.md).
Weights are not in the artifact: the server needs them at every start. Runs only in the Neuron vLLM
container on Trn2/Trn3.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from agentfleet.ops import logs
from agentfleet.serve.boot.vllm_server import READY_TIMEOUT_ENV, VllmServer, free_port
from agentfleet.serve.model.base import GenerationRequest, GenerationResult, ModelBackend
from agentfleet.spec.settings import Settings

log = logs.get(__name__)

COMPILE_TIMEOUT_ENVS = ("NEURON_LIBTORCH_COMPILATION_TIMEOUT", "VLLM_NEURON_COMPILATION_TIMEOUT")
CACHE_ONLY_ENV = "VLLM_NEURON_DISABLE_WARMUP_COMPILE"
ADDITIONAL_CONFIG = {"neuron_config": {"on_device_sampling_config": {"all_greedy": True}}}
# Environment values that change the compiled NEFFs, hence the cache key: compiler flags and the
# platform target (compilation_cache.md "Cache Key": compiler args, platform target) and the KV budget
# cap, because the KV cache size is baked into the NEFF shape (features-guide.md "Memory management").
ARTIFACT_ENVS = ("NEURON_CC_FLAGS", "NEURON_PLATFORM_TARGET_OVERRIDE", "VLLM_NEURON_KV_GMU_BUDGET_CAP_FRACTION")
ClientFactory = Callable[[str, Settings, Path], ModelBackend]


def serve_command(settings: Settings, weights: Path, port: int) -> list[str]:
    return [
        "vllm", "serve", str(weights),
        "--served-model-name", settings.model_id,
        "--tensor-parallel-size", str(settings.tensor_parallel_degree),
        "--max-num-seqs", str(settings.batch_size),
        "--max-model-len", str(settings.sequence_length),
        "--additional-config", json.dumps(ADDITIONAL_CONFIG, sort_keys=True, separators=(",", ":")),
        "--host", "127.0.0.1", "--port", str(port),
    ]


def serve_env(artifact_dir: Path, settings: Settings, *, cache_only: bool,
              base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["VLLM_CACHE_ROOT"] = str(artifact_dir)
    timeout = str(settings.compile_timeout_seconds)
    for name in (READY_TIMEOUT_ENV, *COMPILE_TIMEOUT_ENVS):
        env[name] = timeout
    if cache_only:
        env[CACHE_ONLY_ENV] = "1"
    else:
        env.pop(CACHE_ONLY_ENV, None)
    return env


def artifact_config(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """Every serve flag and environment value that shapes the NEFFs (goes into the cache key)."""
    env = os.environ if base is None else base
    flags = serve_command(settings, Path("MODEL"), 0)[3:-4]  # without weights path, host and port
    config = {"serve_flags": " ".join(flags)}
    config.update({name: env[name] for name in ARTIFACT_ENVS if name in env})
    return config


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
    """Compile = start the server on an empty cache root; that server then serves (no restart, so no
    "cores busy"). Load on a cache hit starts the server cache-only."""

    name = "vllm-neuron"
    weights_for_compile = True
    weights_for_load = True

    def __init__(self, settings: Settings, client_factory: ClientFactory = _openai_client) -> None:
        if settings.compile_timeout_seconds < 1:
            raise ValueError(f"compile_timeout_seconds must be >= 1, got {settings.compile_timeout_seconds}")
        self.settings, self.client_factory = settings, client_factory
        self._compiled: VllmServer | None = None  # the server that compiled, kept to serve

    def versions(self) -> tuple[str, str]:
        from agentfleet.serve.boot.engine_api import package_version

        return package_version("vllm-neuron"), package_version("neuronx-cc")

    def artifact_config(self) -> dict[str, str]:
        return artifact_config(self.settings)

    def _start(self, artifact_dir: Path, weights: Path | None, *, cache_only: bool) -> VllmServer:
        if weights is None:
            raise ValueError("vllm serve needs the model weights on local disk")
        artifact_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        env = serve_env(artifact_dir, self.settings, cache_only=cache_only)
        return VllmServer(serve_command(self.settings, weights, port), env, port, artifact_dir)

    def compile(self, *, weights: Path | None, out_dir: Path) -> None:
        server = self._start(out_dir, weights, cache_only=False)
        try:
            server.wait_ready(self.settings.compile_timeout_seconds)
        except BaseException:
            server.stop()
            raise
        self._compiled = server

    def release(self) -> None:
        """Stop a compile server that will not serve (pre-warm)."""
        if self._compiled is not None:
            self._compiled.stop()
            self._compiled = None

    def load(self, *, artifact_dir: Path, weights: Path | None) -> VllmNeuronBackend:
        assert weights is not None or self._compiled is not None, "vllm serve needs the model weights"
        server, self._compiled = self._compiled, None
        if server is not None and (server.artifact_dir != artifact_dir or not server.alive()):
            server.stop()
            server = None
        try:
            if server is None:
                server = self._start(artifact_dir, weights, cache_only=True)
                server.wait_ready(self.settings.compile_timeout_seconds)
            assert weights is not None
            return VllmNeuronBackend(server, self.client_factory(server.base_url + "/v1", self.settings, weights))
        except BaseException:
            if server is not None:
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
        """At shutdown: stop the server's process group; its cores need not be free for a process that exits."""
        try:
            self.client.close()
        finally:
            self.server.stop(wait_for_cores=False)
