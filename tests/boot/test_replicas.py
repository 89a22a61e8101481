"""Model replicas on one instance against the fake `vllm` and `neuron-ls` (tests/boot/fake_bin): one compile,
R servers each pinned to its own cores and port, a killed replica restarted while the others serve, and the
instance unhealthy only when none serves."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import types
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from agentfleet.entrypoints.boot import watch_server
from agentfleet.ops.health import HealthServer
from agentfleet.serve.boot.lifecycle import FatalGuard
from agentfleet.serve.boot.vllm_neuron import VllmNeuronEngine
from agentfleet.serve.model.base import GenerationRequest
from agentfleet.serve.model.openai_http import OpenAIHTTPBackend
from agentfleet.spec.settings import Settings


def _calls(state: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (state / "vllm_calls.jsonl").read_text().splitlines()]


def _client(base_urls: list[str], settings: Settings, weights: Path) -> OpenAIHTTPBackend:
    return OpenAIHTTPBackend(base_urls, settings.model_id, batch_size=2, max_prompt_tokens=64, max_new_tokens=8,
                             max_num_seqs=settings.max_num_seqs, count_tokens=lambda text: len(text.split()),
                             max_retries=0)


def _until(predicate: Any, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def two_devices(neuron_fakes: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # 2 devices x 2 logical cores, TP 2: the matrix does not know this "instance", so neuron-ls counts 2 replicas
    monkeypatch.setenv("FAKE_NEURON_DEVICES", "2")
    monkeypatch.setenv("FAKE_NEURON_CORES_PER_DEVICE", "2")
    monkeypatch.setenv("FAKE_VLLM_RELEASE_S", "0.5")
    return neuron_fakes


def test_one_compile_serves_every_replica_each_on_its_cores_and_a_killed_one_comes_back(
        two_devices: Path, tmp_path: Path) -> None:
    settings = Settings(compile_timeout_seconds=60, vllm_base_port=0, tensor_parallel_degree=2, max_num_seqs=3)
    engine = VllmNeuronEngine(settings, client_factory=_client, supervise_poll_s=0.1)
    artifacts, weights = tmp_path / "artifacts", tmp_path / "weights"
    engine.compile(weights=weights, out_dir=artifacts)
    backend = engine.load(artifact_dir=artifacts, weights=weights)
    try:
        calls = _calls(two_devices)
        assert [c["env"]["NEURON_RT_VISIBLE_CORES"] for c in calls] == ["0-1", "2-3"]
        assert [c["cached"] for c in calls] == [False, True], "one compile; replica 1 starts cache-only"
        assert all(c["argv"][c["argv"].index("--max-num-seqs") + 1] == "3" for c in calls)
        ports = {c["argv"][c["argv"].index("--port") + 1] for c in calls}
        assert len(ports) == 2 and backend.slots == 2 * 3 and backend.replicas.serving()

        victim = backend.replicas.servers[1]
        assert victim is not None
        os.killpg(victim.process.pid, signal.SIGKILL)
        assert _until(lambda: backend.replicas.live() == [0]), "the dead replica leaves the live set"
        assert backend.replicas.serving(), "the instance still serves on replica 0"
        out = backend.generate([GenerationRequest("probe", ("ignore",), affinity_key="ci-triage")])
        assert "ignore" in out.texts[0]
        assert _until(lambda: backend.replicas.live() == [0, 1]), "the supervisor restarted replica 1"
        assert backend.replicas.restarts == [0, 1] and backend.slots == 6
        restarted = _calls(two_devices)[-1]
        assert restarted["env"]["NEURON_RT_VISIBLE_CORES"] == "2-3" and restarted["cached"] is True
        with urllib.request.urlopen(backend.replicas.servers[1].base_url + "/health", timeout=5) as resp:  # type: ignore[union-attr]
            assert resp.status == 200
    finally:
        backend.close()
    assert not any(s is not None and s.alive() for s in backend.replicas.servers)


def test_the_instance_is_unhealthy_only_when_no_replica_serves() -> None:
    asg_calls: list[dict[str, Any]] = []
    asg = types.SimpleNamespace(set_instance_health=lambda **kw: asg_calls.append(kw))
    guard = FatalGuard(asg, "i-0abc", in_group=True)
    health = HealthServer(port=0, host="127.0.0.1", state="healthy").start()
    live = {"replicas": [0, 1]}
    replicas = types.SimpleNamespace(count=2, serving=lambda: bool(live["replicas"]))
    stop = threading.Event()
    watch_server(types.SimpleNamespace(replicas=replicas), guard, stop, interval_s=0.02,  # type: ignore[arg-type]
                 health=health, none_serving_grace_s=0.5)
    try:
        live["replicas"] = [0]
        time.sleep(0.2)
        assert health.state == "healthy" and not asg_calls, "one replica down: still healthy"
        live["replicas"] = []
        assert _until(lambda: health.state == "unhealthy", 5), "/ping answers 503 when none serves"
        live["replicas"] = [1]
        assert _until(lambda: health.state == "healthy", 5) and not asg_calls, "a restart within the grace recovers"
        live["replicas"] = []
        assert _until(lambda: bool(asg_calls), 5), "none serving past the grace: SetInstanceHealth Unhealthy"
        assert asg_calls[0]["HealthStatus"] == "Unhealthy" and "no model replica of 2" in (guard.reason or "")
    finally:
        stop.set()
        health.stop()


def test_replica_count_from_the_matrix_else_neuron_ls() -> None:
    from agentfleet.serve.boot.device_health import Devices
    from agentfleet.serve.boot.load import resolve_target
    from agentfleet.serve.boot.vllm_neuron import replica_count

    def imds(instance_type: str) -> Any:
        return types.SimpleNamespace(instance_type=lambda: instance_type)

    auto = Settings(instance_family="auto", engine="auto", tensor_parallel_degree=4)
    assert resolve_target(auto, imds("trn2.48xlarge")).replicas == 16
    assert resolve_target(auto, imds("trn3.48xlarge")).replicas == 0, "cores unknown: counted at load"
    assert resolve_target(Settings(instance_family="auto", engine="auto", replicas=2), imds("trn2.48xlarge")).replicas == 2
    assert replica_count(Settings(replicas=3)) == 3
    eight = Devices(count=8, cores=64, holders=())
    assert replica_count(Settings(tensor_parallel_degree=4), lambda: eight) == 16
    one = Devices(count=1, cores=8, holders=())
    assert replica_count(Settings(tensor_parallel_degree=2), lambda: one) == 1, "single-chip types get one replica"
