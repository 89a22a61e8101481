"""After InService: SetInstanceHealth Unhealthy once on a fatal error; heartbeats stop when the action
is gone; neuron-monitor hardware errors reach the guard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from boot_fakes import memory_metrics
from botocore.exceptions import ClientError

from agentfleet.ops.instance import record_lifecycle_heartbeat, set_unhealthy
from agentfleet.serve.boot.device_health import DeviceUnhealthy, check_at_boot, parse_neuron_ls
from agentfleet.serve.boot.lifecycle import FatalGuard
from agentfleet.serve.boot.neuron_monitor import consume

SAMPLE = Path(__file__).parent / "data" / "neuron_monitor_report.json"


class Asg:
    def __init__(self, error: str | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.error = error

    def set_instance_health(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {}

    def record_lifecycle_action_heartbeat(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.error:
            raise ClientError({"Error": {"Code": "ValidationError", "Message": self.error}},
                              "RecordLifecycleActionHeartbeat")
        return {}


def test_first_fatal_error_marks_unhealthy_ignoring_the_grace_period() -> None:
    asg = Asg()
    guard = FatalGuard(asg, "i-0abc", in_group=True)
    guard.fail("neuron hardware errors: device 0: mem_ecc_uncorrected=1")
    guard.fail("model server exited")
    assert asg.calls == [{"InstanceId": "i-0abc", "HealthStatus": "Unhealthy", "ShouldRespectGracePeriod": False}]
    assert guard.reason is not None and "mem_ecc_uncorrected" in guard.reason
    outside = Asg()
    FatalGuard(outside, None, in_group=False).fail("local mode")
    assert outside.calls == []
    with pytest.raises(ValueError, match="instance_id"):
        set_unhealthy(asg, instance_id="", reason="x")


def test_heartbeat_reports_a_finished_action() -> None:
    assert record_lifecycle_heartbeat(Asg(), asg_name="g", hook_name="h", instance_id="i-1") is True
    gone = Asg(error="No active Lifecycle Action found with instance ID i-1")
    assert record_lifecycle_heartbeat(gone, asg_name="g", hook_name="h", instance_id="i-1") is False
    with pytest.raises(ClientError):
        record_lifecycle_heartbeat(Asg(error="Rate exceeded"), asg_name="g", hook_name="h", instance_id="i-1")


def test_monitor_hardware_errors_reach_the_guard() -> None:
    asg = Asg()
    guard = FatalGuard(asg, "i-0abc", in_group=True)
    clean = SAMPLE.read_text()
    doc = json.loads(clean)
    doc["neuron_runtime_data"][0]["report"]["execution_stats"]["error_summary"]["hardware"] = 2
    assert consume([clean], memory_metrics(), on_hardware_error=guard.fail) == 1 and asg.calls == []
    assert consume([json.dumps(doc)], memory_metrics(), on_hardware_error=guard.fail) == 1
    assert asg.calls and guard.reason is not None and "runtime pid 4711" in guard.reason


def test_neuron_ls_json_from_the_docs() -> None:
    # The shape of the `neuron-ls -j` example in aws-neuron-sdk tools/neuron-sys-tools/neuron-ls.rst.
    doc = [{"neuron_device": 0, "bdf": "cc:00.0", "nc_count": 4, "logical_neuroncore_config": 2,
            "memory_size": 103079215104, "neuroncore_ids": [0, 1, 2, 3],
            "neuron_processes": [{"pid": 113985, "command": "neuron-bench exec", "neuron_runtime_version": "2.0.0"}]},
           {"neuron_device": 1, "nc_count": 4, "neuroncore_ids": [4, 5, 6, 7], "neuron_processes": []}]
    devices = parse_neuron_ls(json.dumps(doc))
    assert (devices.count, devices.cores, devices.holders) == (2, 8, (113985,))
    with pytest.raises(DeviceUnhealthy, match="documented JSON"):
        parse_neuron_ls('{"not": "a list"}')


def test_boot_check_without_the_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DeviceUnhealthy, match="aws-neuronx-tools"):
        check_at_boot(needed_cores=1)


def test_a_model_server_that_dies_while_serving_is_fatal() -> None:
    import threading
    import time
    import types

    from agentfleet.entrypoints.boot import watch_server

    asg = Asg()
    guard = FatalGuard(asg, "i-0abc", in_group=True)
    state = {"alive": True}
    server = types.SimpleNamespace(alive=lambda: state["alive"], process=types.SimpleNamespace(returncode=-9))
    stop = threading.Event()
    watch_server(types.SimpleNamespace(server=server), guard, stop, interval_s=0.02)  # type: ignore[arg-type]
    time.sleep(0.1)
    assert asg.calls == []
    state["alive"] = False
    deadline = time.monotonic() + 5
    while not asg.calls and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    assert asg.calls[0]["HealthStatus"] == "Unhealthy" and "code -9" in (guard.reason or "")
