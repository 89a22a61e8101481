"""Readiness gate: healthy + CONTINUE only after a warm-up answered; a failed boot ABANDONs; the launch
action is heartbeated while booting; the Neuron devices are checked (fake neuron-ls / neuron-monitor on
PATH) before anything compiles.

moto's autoscaling has no CompleteLifecycleAction, so a recording client stands in for it and
raises botocore's real ClientError shape where AWS would.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from boot_fakes import BootAws, RecordingEngine, emitted, memory_metrics
from botocore.exceptions import ClientError

from agentfleet.entrypoints.boot import boot_and_signal
from agentfleet.ops.health import HealthServer
from agentfleet.ops.instance import complete_lifecycle_action
from agentfleet.serve.boot.load import resolve_target
from agentfleet.serve.boot.sequence import BootError

pytestmark = pytest.mark.integration


class RecordingAsg:
    def __init__(self, error: str | None = None) -> None:
        self.calls: list[dict[str, str]] = []
        self.error = error
        self.health_at_call: list[str] = []
        self.health: HealthServer | None = None

    def record_lifecycle_action_heartbeat(self, **kwargs: str) -> dict[str, Any]:
        self.calls.append({"op": "RecordLifecycleActionHeartbeat", **kwargs})
        return {}

    def set_instance_health(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append({"op": "SetInstanceHealth", **kwargs})
        return {}

    def complete_lifecycle_action(self, **kwargs: str) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.health is not None:
            self.health_at_call.append(self.health.state)
        if self.error:
            raise ClientError({"Error": {"Code": "ValidationError", "Message": self.error}}, "CompleteLifecycleAction")
        return {}


class FakeImds:
    def __init__(self, instance_type: str | None = "trn2.48xlarge") -> None:
        self._type = instance_type

    def instance_id(self) -> str | None:
        return "i-0123456789abcdef0" if self._type else None

    def instance_type(self) -> str | None:
        return self._type


def _ping(health: HealthServer) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{health.port}/ping", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def health() -> Any:
    server = HealthServer(port=0, host="127.0.0.1").start()
    yield server
    server.stop()


def _run(aws: BootAws, tmp: Path, engine: RecordingEngine, health: HealthServer, asg: RecordingAsg,
         **overrides: Any) -> Any:
    settings = aws.settings(tmp, asg_name="fleet-asg", launch_hook_name="launch-hook", instance_family="auto",
                            engine="auto", **overrides)
    metrics = memory_metrics()
    asg.health = health
    booted = boot_and_signal(settings, deps=aws.deps(metrics), health=health, imds=FakeImds(),  # type: ignore[arg-type]
                             asg_client=asg, engine_factory=lambda s, family: engine)
    return booted, emitted(metrics)


@pytest.fixture(autouse=True)
def _devices(neuron_fakes: Path) -> Path:
    return neuron_fakes  # every boot here resolves to a Neuron engine: it meets the fake devices first


def test_success_goes_healthy_then_continues(boot_aws: BootAws, tmp_path: Path, health: HealthServer) -> None:
    asg = RecordingAsg()
    assert _ping(health) == 503
    booted, metrics = _run(boot_aws, tmp_path, RecordingEngine(), health, asg)
    assert booted is not None
    target, result = booted
    assert target.instance_family == "trn2" and target.engine == "vllm-neuron"
    assert result.backend.calls, "the warm-up sent one real request"
    assert _ping(health) == 200
    assert asg.calls == [{"AutoScalingGroupName": "fleet-asg", "LifecycleHookName": "launch-hook",
                          "InstanceId": "i-0123456789abcdef0", "LifecycleActionResult": "CONTINUE"}]
    assert asg.health_at_call == ["healthy"], "CONTINUE only after /ping is healthy"
    assert "BootToReady" in metrics


def test_compile_failure_abandons_and_reports_why(boot_aws: BootAws, tmp_path: Path, health: HealthServer) -> None:
    asg, engine = RecordingAsg(), RecordingEngine(fail_compile=True)
    booted, metrics = _run(boot_aws, tmp_path, engine, health, asg)
    assert booted is None
    assert [c["LifecycleActionResult"] for c in asg.calls] == ["ABANDON"]
    assert _ping(health) == 503
    assert engine.released == 1, "a failed boot releases what the engine holds (the compile server's cores)"
    assert '"BootFailure": 1.0' in metrics and '"Phase": "compile"' in metrics
    # The lock was released, so a replacement instance can compile.
    locks = boot_aws.dynamodb.scan(TableName=boot_aws.table)["Items"]
    assert not [item for item in locks if item["owner"]["S"] == "i-0123456789abcdef0"]


def test_warmup_without_tokens_abandons(boot_aws: BootAws, tmp_path: Path, health: HealthServer) -> None:
    asg = RecordingAsg()
    booted, metrics = _run(boot_aws, tmp_path, RecordingEngine(answer=""), health, asg)
    assert booted is None and asg.calls[0]["LifecycleActionResult"] == "ABANDON"
    assert '"Phase": "warmup"' in metrics


def test_already_completed_action_is_not_an_error() -> None:
    asg = RecordingAsg(error="No active Lifecycle Action found with instance ID i-0123456789abcdef0")
    complete_lifecycle_action(asg, asg_name="g", hook_name="h", instance_id="i-1", result="CONTINUE")
    other = RecordingAsg(error="Rate exceeded")
    with pytest.raises(ClientError):
        complete_lifecycle_action(other, asg_name="g", hook_name="h", instance_id="i-1", result="CONTINUE")
    with pytest.raises(ValueError, match="CONTINUE"):
        complete_lifecycle_action(asg, asg_name="g", hook_name="h", instance_id="i-1", result="MAYBE")


def test_resolve_target_rejects_impossible_pairs(boot_aws: BootAws, tmp_path: Path) -> None:
    settings = boot_aws.settings(tmp_path, instance_family="auto", engine="auto")
    assert resolve_target(settings, FakeImds("inf2.xlarge")).engine == "optimum-neuron"  # type: ignore[arg-type]
    assert resolve_target(settings, FakeImds("trn3.48xlarge")).engine == "vllm-neuron"  # type: ignore[arg-type]
    with pytest.raises(BootError, match="unreachable"):
        resolve_target(settings, FakeImds(None))  # type: ignore[arg-type]
    from agentfleet.serve.boot.engines import create_engine

    with pytest.raises(ValueError, match=r"does not run on instance family .trn3.; it supports trn1, inf2"):
        create_engine(boot_aws.settings(tmp_path, engine="optimum-neuron"), "trn3")


def test_a_long_boot_heartbeats_the_launch_action(boot_aws: BootAws, tmp_path: Path, health: HealthServer) -> None:
    asg = RecordingAsg()
    booted, _ = _run(boot_aws, tmp_path, RecordingEngine(compile_seconds=2.5), health, asg,
                     lifecycle_heartbeat_seconds=1)
    assert booted is not None
    ops = [c.get("op", c.get("LifecycleActionResult")) for c in asg.calls]
    assert ops[-1] == "CONTINUE" and ops.count("RecordLifecycleActionHeartbeat") >= 2, ops
    beat = next(c for c in asg.calls if c.get("op") == "RecordLifecycleActionHeartbeat")
    assert beat == {"op": "RecordLifecycleActionHeartbeat", "AutoScalingGroupName": "fleet-asg",
                    "LifecycleHookName": "launch-hook", "InstanceId": "i-0123456789abcdef0"}


def test_dead_devices_abandon_before_any_compile(boot_aws: BootAws, tmp_path: Path, health: HealthServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NEURON_LS_FAIL", "1")
    asg, engine = RecordingAsg(), RecordingEngine()
    booted, metrics = _run(boot_aws, tmp_path, engine, health, asg)
    assert booted is None and engine.compiles == [] and asg.calls[-1]["LifecycleActionResult"] == "ABANDON"
    assert '"Phase": "device_health"' in metrics


def test_uncorrected_ecc_abandons_before_any_compile(boot_aws: BootAws, tmp_path: Path, health: HealthServer,
                                                     neuron_fakes: Path) -> None:
    (neuron_fakes / "hw_counters.json").write_text(json.dumps([{
        "neuron_device_index": 0, "mem_ecc_corrected": 3, "mem_ecc_uncorrected": 1,
        "sram_ecc_uncorrected": 0, "sram_ecc_corrected": 0}]))
    asg, engine = RecordingAsg(), RecordingEngine()
    booted, metrics = _run(boot_aws, tmp_path, engine, health, asg)
    assert booted is None and engine.compiles == [] and '"Phase": "device_health"' in metrics


def test_too_few_cores_for_the_tensor_parallel_degree(boot_aws: BootAws, tmp_path: Path, health: HealthServer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NEURON_CORES_PER_DEVICE", "1")  # 1 device x 1 core, TP 2
    asg, engine = RecordingAsg(), RecordingEngine()
    booted, metrics = _run(boot_aws, tmp_path, engine, health, asg)
    assert booted is None and engine.compiles == [] and '"Phase": "device_health"' in metrics
