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
- `--max-num-seqs` caps the requests one server runs at once ("When the running queue reaches
  max_num_seqs, new prefill requests are blocked", design/vllm/neuron-scheduler.md); batch buckets
  default to powers of 2 up to it (design/vllm/additional-config.md). Set from settings.max_num_seqs.
- Replicas: R = logical cores / TP servers (serve/boot/replicas.py), replica i on cores i*TP.. with
  NEURON_RT_VISIBLE_CORES and port vllm_base_port + i. vllm-neuron also offers `--data-parallel-size`
  (design/parallelism/data_parallelism.md) in one server; separate servers are used instead so one dead
  replica is restarted alone and each has its own /health and /metrics. The NeuronPlatform names
  NEURON_RT_VISIBLE_CORES as its device_control_env_var (design/vllm/vllm-integration-design-reference.md);
  that vLLM leaves a value set by the parent alone when data_parallel_size is 1 is UNVERIFIED here.
- Chat requests: Qwen3's template thinks unless `chat_template_kwargs: {"enable_thinking": false}`
  (qwen.readthedocs.io deployment/vllm "Thinking & Non-Thinking Modes"; the quickstart's
  enable_thinking "Default is True"); a template that does not read the variable ignores it.
Weights are not in the artifact: the server needs them at every start. Runs only in the Neuron vLLM
container on Trn2/Trn3.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from agentfleet.ops import logs
from agentfleet.serve.boot import device_health
from agentfleet.serve.boot.replicas import ReplicaSet, core_range, visible_cores
from agentfleet.serve.boot.vllm_backend import VllmNeuronBackend
from agentfleet.serve.boot.vllm_server import READY_TIMEOUT_ENV, VllmServer, free_port
from agentfleet.serve.model.base import ModelBackend
from agentfleet.spec.settings import Settings

log = logs.get(__name__)

COMPILE_TIMEOUT_ENVS = ("NEURON_LIBTORCH_COMPILATION_TIMEOUT", "VLLM_NEURON_COMPILATION_TIMEOUT")
CACHE_ONLY_ENV = "VLLM_NEURON_DISABLE_WARMUP_COMPILE"
ADDITIONAL_CONFIG = {"neuron_config": {"on_device_sampling_config": {"all_greedy": True}}}
# Environment values that change the compiled NEFFs, hence the cache key: compiler flags and the
# platform target (compilation_cache.md "Cache Key": compiler args, platform target) and the KV budget
# cap, because the KV cache size is baked into the NEFF shape (features-guide.md "Memory management").
ARTIFACT_ENVS = ("NEURON_CC_FLAGS", "NEURON_PLATFORM_TARGET_OVERRIDE", "VLLM_NEURON_KV_GMU_BUDGET_CAP_FRACTION")
VISIBLE_CORES_ENV = "NEURON_RT_VISIBLE_CORES"
CHAT_TEMPLATE_KWARGS = {"enable_thinking": False}
ClientFactory = Callable[[list[str], Settings, Path], ModelBackend]


def serve_command(settings: Settings, weights: Path, port: int) -> list[str]:
    return [
        "vllm", "serve", str(weights),
        "--served-model-name", settings.model_id,
        "--tensor-parallel-size", str(settings.tensor_parallel_degree),
        "--max-num-seqs", str(settings.max_num_seqs),
        "--max-model-len", str(settings.sequence_length),
        "--additional-config", json.dumps(ADDITIONAL_CONFIG, sort_keys=True, separators=(",", ":")),
        "--host", "127.0.0.1", "--port", str(port),
    ]


def serve_env(artifact_dir: Path, settings: Settings, *, cache_only: bool,
              base: dict[str, str] | None = None, cores: tuple[int, ...] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["VLLM_CACHE_ROOT"] = str(artifact_dir)
    if cores is not None:
        env[VISIBLE_CORES_ENV] = visible_cores(cores)
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


def _openai_client(base_urls: list[str], settings: Settings, weights: Path) -> ModelBackend:
    """The OpenAI-compatible client over the replicas, counting tokens with the served model's tokenizer
    and chat template (an estimate could let an over-long prompt through, which vLLM rejects with 400)."""
    from transformers import AutoTokenizer

    from agentfleet.serve.model.chat import chat_counter
    from agentfleet.serve.model.openai_http import OpenAIHTTPBackend

    tokenizer = AutoTokenizer.from_pretrained(str(weights))
    return OpenAIHTTPBackend(
        [url + "/v1" for url in base_urls], settings.model_id, batch_size=settings.batch_size,
        max_prompt_tokens=settings.sequence_length - settings.max_new_tokens,
        max_new_tokens=settings.max_new_tokens, max_num_seqs=settings.max_num_seqs,
        count_tokens=lambda text: len(tokenizer.encode(text, add_special_tokens=False)),
        count_messages=chat_counter(tokenizer, CHAT_TEMPLATE_KWARGS), chat_template_kwargs=CHAT_TEMPLATE_KWARGS,
    )


def replica_count(settings: Settings, list_devices: Callable[[], device_health.Devices] = device_health.list_devices) -> int:
    """settings.replicas when the boot knew the instance type, else from neuron-ls: one replica on a single
    device (issue 11: single-chip types get one), else logical cores // TP."""
    if settings.replicas > 0:
        return settings.replicas
    devices = list_devices()
    count = 1 if devices.count == 1 else max(1, devices.cores // settings.tensor_parallel_degree)
    log.info("replicas from neuron-ls", extra={"devices": devices.count, "cores": devices.cores, "replicas": count})
    return count


class VllmNeuronEngine:
    """Compile = start the server on an empty cache root; that server then serves (no restart, so no
    "cores busy"). Load on a cache hit starts the server cache-only."""

    name = "vllm-neuron"
    weights_for_compile = True
    weights_for_load = True

    def __init__(self, settings: Settings, client_factory: ClientFactory = _openai_client,
                 supervise_poll_s: float = 5.0) -> None:
        if settings.compile_timeout_seconds < 1:
            raise ValueError(f"compile_timeout_seconds must be >= 1, got {settings.compile_timeout_seconds}")
        self.settings, self.client_factory, self.supervise_poll_s = settings, client_factory, supervise_poll_s
        self._compiled: VllmServer | None = None  # the server that compiled, kept to serve

    def versions(self) -> tuple[str, str]:
        from agentfleet.serve.boot.engine_api import package_version

        return package_version("vllm-neuron"), package_version("neuronx-cc")

    def artifact_config(self) -> dict[str, str]:
        return artifact_config(self.settings)

    def _port(self, index: int) -> int:
        base = self.settings.vllm_base_port
        return base + index if base else free_port()

    def _start(self, artifact_dir: Path, weights: Path | None, *, cache_only: bool, index: int = 0) -> VllmServer:
        if weights is None:
            raise ValueError("vllm serve needs the model weights on local disk")
        artifact_dir.mkdir(parents=True, exist_ok=True)
        port, cores = self._port(index), core_range(index, self.settings.tensor_parallel_degree)
        env = serve_env(artifact_dir, self.settings, cache_only=cache_only, cores=cores)
        return VllmServer(serve_command(self.settings, weights, port), env, port, artifact_dir, cores=cores)

    def compile(self, *, weights: Path | None, out_dir: Path) -> None:
        """One server on replica 0's cores compiles (and then serves as replica 0)."""
        server = self._start(out_dir, weights, cache_only=False, index=0)
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
        """Start every replica cache-only from the one artifact folder (the compile server, if it is still
        up, serves as replica 0), wait until all answer, then supervise them."""
        assert weights is not None or self._compiled is not None, "vllm serve needs the model weights"
        server, self._compiled = self._compiled, None
        if server is not None and (server.artifact_dir != artifact_dir or not server.alive()):
            server.stop()
            server = None
        replicas = ReplicaSet(lambda i: self._start(artifact_dir, weights, cache_only=True, index=i),
                              replica_count(self.settings), ready_timeout_s=self.settings.compile_timeout_seconds,
                              poll_s=self.supervise_poll_s)
        if server is not None:
            replicas.adopt(0, server)
        replicas.start_all()  # stops every replica on failure
        try:
            assert weights is not None
            client = self.client_factory(replicas.base_urls(), self.settings, weights)
        except BaseException:
            replicas.stop()
            raise
        set_live = getattr(client, "set_live", None)
        replicas.on_change = set_live
        replicas.supervise()
        return VllmNeuronBackend(replicas, client)
