"""The boot sequence: resolve the cache key, get compiled artifacts (cache or compile), load, warm up.

    resolve -> local copy? -> cache_lookup --hit--> download ------------------> load -> warmup
                                   |miss
                                   v
                  compile lock taken? --yes--> compile -> upload (manifest last) -> release
                                   |no
                                   v
                  wait: poll the manifest; if the holder's lock expires, take it over

Every phase is timed (log line + BootPhaseDuration{Phase}); a failure is raised as
BootError naming the phase, so the caller can abandon the lifecycle action with a reason.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentfleet.ops import logs
from agentfleet.ops.metrics import Metrics
from agentfleet.serve.boot.cache_key import CacheKeyInputs
from agentfleet.serve.boot.compile_cache import S3CompileCache, local_copy
from agentfleet.serve.boot.engine_api import Engine
from agentfleet.serve.boot.lock import CompileLock
from agentfleet.serve.boot.weights import fetch_weights
from agentfleet.serve.model.base import GenerationRequest, ModelBackend
from agentfleet.spec import metric_names
from agentfleet.spec.settings import Settings

log = logs.get(__name__)

WARMUP_PROMPT = "health probe: reply with a decision"  # the same probe the worker uses


class BootError(RuntimeError):
    """The boot failed in `phase`; the message says why."""

    def __init__(self, phase: str, message: str) -> None:
        super().__init__(f"boot failed in phase {phase}: {message}")
        self.phase = phase


@dataclass
class BootDeps:
    """Clients and knobs; tests shorten the waits."""

    s3: Any
    dynamodb: Any
    metrics: Metrics
    secrets: Any | None = None
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    poll_seconds: float = 15.0
    wait_timeout_s: float = 4 * 3600.0
    lock_ttl_s: int = 300


@dataclass
class BootResult:
    key: str
    artifact_dir: Path
    cache_hit: bool
    compiled: bool
    published: bool
    phases: dict[str, float] = field(default_factory=dict)
    backend: ModelBackend | None = None


class Boot:
    """One boot of one engine; `prepare()` makes the artifacts local, `run()` also loads and warms up."""

    def __init__(self, settings: Settings, engine: Engine, family: str, deps: BootDeps, *, owner: str) -> None:
        self.settings, self.engine, self.family, self.deps, self.owner = settings, engine, family, deps, owner
        self.cache = S3CompileCache(deps.s3, settings.cache_bucket)
        self.root = Path(settings.compile_cache_dir)
        self.phases: dict[str, float] = {}
        self._weights: Path | None = None

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        except BootError:
            raise
        except Exception as exc:
            raise BootError(name, f"{type(exc).__name__}: {exc}") from exc
        finally:
            seconds = time.perf_counter() - start
            self.phases[name] = self.phases.get(name, 0.0) + seconds
            self.deps.metrics.observe(metric_names.BOOT_PHASE_SECONDS, seconds, "Seconds", Phase=name)
            log.info("boot phase done", extra={"phase": name, "duration_ms": round(seconds * 1000, 1)})

    def weights(self) -> Path:
        if self._weights is None:
            ref = f"{self.settings.model_id}@{self.settings.model_revision}".encode()
            dest = self.root / "weights" / hashlib.sha256(ref).hexdigest()[:16]
            self._weights = fetch_weights(self.settings, dest, s3_client=self.deps.s3, secrets_client=self.deps.secrets)
        return self._weights

    def prepare(self) -> BootResult:
        with self.phase("resolve"):
            engine_version, compiler_version = self.engine.versions()
            inputs = CacheKeyInputs.from_settings(self.settings, engine_version=engine_version,
                                                  compiler_version=compiler_version, instance_family=self.family,
                                                  engine_config=self.engine.artifact_config())
            key = inputs.key()
            artifact_dir = self.root / key
            log.info("compile cache key", extra={"cache_key": key, **inputs.as_dict()})
        result = BootResult(key, artifact_dir, cache_hit=True, compiled=False, published=False, phases=self.phases)
        if local_copy(artifact_dir, key) is not None:
            log.info("compiled artifacts already on local disk", extra={"cache_key": key})
        elif not self._fetch(key, artifact_dir):
            result.cache_hit = False
            self._miss(key, artifact_dir, inputs, result)
        metric = metric_names.COMPILE_CACHE_HITS if result.cache_hit else metric_names.COMPILE_CACHE_MISSES
        self.deps.metrics.count(metric)
        return result

    def _fetch(self, key: str, artifact_dir: Path) -> bool:
        with self.phase("cache_lookup"):
            manifest = self.cache.lookup(key)
        if manifest is None:
            return False
        with self.phase("download"):
            self.cache.download(manifest, artifact_dir)
        log.info("compile cache hit", extra={"cache_key": key, "bytes": manifest.total_bytes,
                                              "files": len(manifest.files)})
        return True

    def _miss(self, key: str, artifact_dir: Path, inputs: CacheKeyInputs, result: BootResult) -> None:
        lock = CompileLock(self.deps.dynamodb, self.settings.leases_table, key, self.owner,
                           ttl_seconds=self.deps.lock_ttl_s, clock=self.deps.clock)
        deadline = time.monotonic() + self.deps.wait_timeout_s
        while True:
            if lock.acquire():
                try:
                    # Someone may have published between our lookup and our lock.
                    if self._fetch(key, artifact_dir):
                        result.cache_hit = True
                        return
                    self._compile_and_publish(lock, key, artifact_dir, inputs, result)
                    return
                finally:
                    lock.release()
            log.info("another instance is compiling; waiting for its manifest",
                     extra={"cache_key": key, "holder": (lock.holder() or ("?",))[0]})
            self.deps.sleep(self.deps.poll_seconds)
            if self._fetch(key, artifact_dir):
                result.cache_hit = True
                return
            if time.monotonic() > deadline:
                raise BootError("compile", f"no manifest for {key} after waiting {self.deps.wait_timeout_s:.0f} s")

    def _compile_and_publish(self, lock: CompileLock, key: str, artifact_dir: Path,
                             inputs: CacheKeyInputs, result: BootResult) -> None:
        weights = None
        if self.engine.weights_for_compile:
            with self.phase("weights"):
                weights = self.weights()
        # Compiled in place: the vLLM server that compiled keeps serving from this folder. A compile that
        # dies halfway leaves a folder without the local manifest marker, which no boot trusts.
        shutil.rmtree(artifact_dir, ignore_errors=True)
        artifact_dir.mkdir(parents=True)
        started = time.monotonic()

        def progress() -> None:
            log.info("compile in progress", extra={"cache_key": key, "elapsed_s": round(time.monotonic() - started)})

        log.info("compile cache miss: compiling", extra={"cache_key": key, "engine": self.engine.name})
        with lock.heartbeat(on_beat=progress) as lost, self.phase("compile"):
            self.engine.compile(weights=weights, out_dir=artifact_dir)
        compile_seconds = time.monotonic() - started
        self.deps.metrics.observe(metric_names.COMPILE_SECONDS, compile_seconds, "Seconds")
        result.compiled = True
        if lost.is_set():
            # Our lock expired and someone else may be publishing: serve our build, do not race the upload.
            log.warning("compile lock was lost; not publishing this build", extra={"cache_key": key})
            return
        with self.phase("upload"):
            self.cache.publish(key, artifact_dir, inputs=inputs.as_dict(), created_by=self.owner)
        result.published = True
        log.info("compiled artifacts published", extra={"cache_key": key, "compile_s": round(compile_seconds, 1)})

    def load(self, result: BootResult) -> ModelBackend:
        with self.phase("load"):
            weights = self.weights() if self.engine.weights_for_load else None
            result.backend = self.engine.load(artifact_dir=result.artifact_dir, weights=weights)
        return result.backend

    def warm_up(self, backend: ModelBackend) -> None:
        """One real request through the loaded model: the instance is healthy only if this answers."""
        with self.phase("warmup"):
            out = backend.generate([GenerationRequest(prompt=WARMUP_PROMPT, allowed_actions=("ignore",))])
            if len(out.texts) != 1 or out.completion_tokens[0] < 1:
                raise RuntimeError(f"warm-up produced no tokens (texts={out.texts!r})")
            log.info("warm-up answered", extra={"latency_ms": round(out.latency_ms, 1),
                                                "completion_tokens": out.completion_tokens[0]})

    def run(self) -> BootResult:
        try:
            result = self.prepare()
            backend = self.load(result)
        except BaseException:
            self.engine.release()  # a compile server left running would hold the NeuronCores
            raise
        try:
            self.warm_up(backend)
        except BaseException:
            backend.close()
            raise
        return result
