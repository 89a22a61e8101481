"""The CPU engine runs the same boot path for real: tiny model built on a miss, downloaded on a hit."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
from boot_fakes import BootAws, emitted, memory_metrics

from agentfleet.entrypoints.boot import main
from agentfleet.serve.boot.compile_cache import LOCAL_MARKER
from agentfleet.serve.boot.engines import CpuEngine
from agentfleet.serve.boot.sequence import Boot
from agentfleet.serve.model.base import GenerationRequest
from agentfleet.spec.catalog import ConfigError

pytestmark = pytest.mark.integration
pytest.importorskip("agentfleet.serve.model.cpu")
# Both tests use one cache entry in the session bucket: the entry-point test then boots from a hit.
SHARED_REVISION = f"seed-0-{uuid.uuid4().hex[:8]}"


class CountingCpuEngine(CpuEngine):
    compiles = 0

    def compile(self, *, weights: Path | None, out_dir: Path) -> None:
        type(self).compiles += 1
        super().compile(weights=weights, out_dir=out_dir)


def test_cpu_boot_miss_then_hit(boot_aws: BootAws, tmp_path: Path) -> None:
    settings = {"engine": "transformers-cpu", "instance_family": "cpu", "model_id": "local/tiny-llama",
                "model_revision": SHARED_REVISION, "batch_size": 2, "sequence_length": 256,
                "tensor_parallel_degree": 1}
    first_settings = boot_aws.settings(tmp_path / "a", **settings)
    first = Boot(first_settings, CountingCpuEngine(first_settings), "cpu", boot_aws.deps(), owner="a").run()
    assert CountingCpuEngine.compiles == 1 and first.published and first.backend is not None
    first.backend.close()

    metrics = memory_metrics()
    second_settings = boot_aws.settings(tmp_path / "b", **settings)
    second = Boot(second_settings, CountingCpuEngine(second_settings), "cpu", boot_aws.deps(metrics),
                  owner="b").run()
    assert CountingCpuEngine.compiles == 1, "the second boot loaded the cached model"
    assert second.cache_hit and second.key == first.key and second.backend is not None
    files = sorted(p.relative_to(second.artifact_dir).as_posix() for p in second.artifact_dir.rglob("*")
                   if p.is_file() and p.name != LOCAL_MARKER)
    assert "config.json" in files and any(f.endswith(".safetensors") for f in files)
    assert '"CompileCacheHit": 1.0' in emitted(metrics)
    second.backend.close()


def test_entry_point_boots_goes_healthy_and_hands_over_to_the_worker(
    boot_aws: BootAws, tmp_path: Path, aws_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    env = {"CACHE_BUCKET": boot_aws.bucket, "LEASES_TABLE": boot_aws.table, "COMPILE_CACHE_DIR": str(tmp_path),
           "ENGINE": "transformers-cpu", "INSTANCE_FAMILY": "cpu", "MODEL_ID": "local/tiny-llama",
           "MODEL_REVISION": SHARED_REVISION, "BATCH_SIZE": "2", "SEQUENCE_LENGTH": "256", "HTTP_PORT": "0",
           "METRICS_MODE": "off"}
    for name, value in env.items():
        monkeypatch.setenv(f"AGENTFLEET_{name}", value)
    monkeypatch.delenv("AGENTFLEET_CONFIG", raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", f"http://127.0.0.1:{closed_port}")  # not on EC2
    seen: dict[str, Any] = {}

    def worker(settings: Any, backend: Any, health: Any, metrics: Any, imds: Any) -> int:
        seen.update(state=health.state, engine=settings.engine,
                    answer=backend.generate([GenerationRequest("health probe: reply with a decision", ("ignore",))]))
        return 7

    assert main([], run_worker=worker, preflight=lambda s: None) == 7
    assert seen["state"] == "healthy" and seen["engine"] == "transformers-cpu"
    assert seen["answer"].completion_tokens[0] > 0

    def bad_config(settings: Any) -> None:
        raise ConfigError("worker settings missing: ['stream_name']")

    assert main([], run_worker=worker, preflight=bad_config) == 1
