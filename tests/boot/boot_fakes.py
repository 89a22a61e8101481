"""Boot test doubles: a recording fake engine (the Neuron boundary), a fake backend, AWS handles."""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentfleet.ops.metrics import Metrics
from agentfleet.serve.boot.sequence import BootDeps
from agentfleet.serve.model.base import GenerationRequest, GenerationResult
from agentfleet.spec.settings import Settings


class FakeBackend:
    name = "fake"

    def __init__(self, artifact_dir: Path, answer: str = "ready") -> None:
        self.artifact_dir, self.answer = artifact_dir, answer
        self.model_id, self.batch_size, self.max_prompt_tokens = "fake/model", 4, 512
        self.calls: list[list[str]] = []
        self.closed = False

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, requests: Sequence[GenerationRequest]) -> GenerationResult:
        self.calls.append([r.prompt for r in requests])
        n = 0 if not self.answer else len(self.answer.split())
        return GenerationResult([self.answer] * len(requests), [self.count_tokens(r.prompt) for r in requests],
                                [n] * len(requests), 1.0)

    def close(self) -> None:
        self.closed = True


@dataclass
class RecordingEngine:
    """Stands in for optimum-neuron / vLLM: records compile and load calls, writes real files."""

    name: str = "optimum-neuron"
    weights_for_compile: bool = False
    weights_for_load: bool = False
    version: str = "0.4.5"
    compiler: str = "2.27.5334.0"
    compile_seconds: float = 0.0
    fail_compile: bool = False
    answer: str = "ready"
    compiles: list[Path] = field(default_factory=list)
    loads: list[Path] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    config: dict[str, str] = field(default_factory=dict)
    released: int = 0

    def versions(self) -> tuple[str, str]:
        return self.version, self.compiler

    def artifact_config(self) -> dict[str, str]:
        return dict(self.config)

    def release(self) -> None:
        self.released += 1

    def compile(self, *, weights: Path | None, out_dir: Path) -> None:
        with self.lock:
            self.compiles.append(out_dir)
        time.sleep(self.compile_seconds)
        if self.fail_compile:
            raise RuntimeError("neuronx-cc exited with status 70")
        (out_dir / "neffs").mkdir(parents=True, exist_ok=True)
        (out_dir / "neffs" / "model.neff").write_bytes(b"NEFF" + bytes(range(256)) * 64)
        (out_dir / "config.json").write_text('{"compiled": true}', encoding="utf-8")

    def load(self, *, artifact_dir: Path, weights: Path | None) -> FakeBackend:
        if not (artifact_dir / "neffs" / "model.neff").is_file():
            raise FileNotFoundError(f"no NEFF in {artifact_dir}")
        with self.lock:
            self.loads.append(artifact_dir)
        return FakeBackend(artifact_dir, self.answer)


@dataclass
class BootAws:
    s3: Any
    dynamodb: Any
    bucket: str
    table: str
    revision: str = "abc123"

    def settings(self, tmp: Path, **overrides: Any) -> Settings:
        values: dict[str, Any] = dict(
            cache_bucket=self.bucket, leases_table=self.table, compile_cache_dir=str(tmp),
            model_id="meta-llama/Llama-3.2-1B-Instruct", model_revision=self.revision, engine="optimum-neuron",
            instance_family="trn2", batch_size=4, sequence_length=1024, tensor_parallel_degree=2,
            worker_id=f"w-{uuid.uuid4().hex[:6]}",
            image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/agentfleet@sha256:ab12",
        )
        values.update(overrides)
        return Settings(**values)

    def deps(self, metrics: Metrics | None = None, **overrides: Any) -> BootDeps:
        values: dict[str, Any] = dict(poll_seconds=0.05, wait_timeout_s=30.0, lock_ttl_s=30)
        values.update(overrides)
        return BootDeps(s3=self.s3, dynamodb=self.dynamodb, metrics=metrics or memory_metrics(), **values)


def memory_metrics() -> Metrics:
    return Metrics("test-fleet", "emf", stream=io.StringIO())


def emitted(metrics: Metrics) -> str:
    metrics.flush()
    stream = metrics._stream
    assert isinstance(stream, io.StringIO)
    return stream.getvalue()
