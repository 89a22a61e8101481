"""SIGTERM mid-batch: finish the batch within the deadline (or drop it unacknowledged), checkpoint,
release leases, exit 0; and the Spot/scale-in watcher that triggers the same path."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agentfleet.entrypoints.worker import Worker
from agentfleet.local.resources import write_config_document
from agentfleet.ops.metrics import Metrics
from agentfleet.ops.shutdown import InterruptionWatcher, StopSignal
from tests.runtime.fakes import ScriptedBackend
from tests.runtime.support import Fleet, event, subprocess_env, wait_for_count, wait_until

SCRIPT = Path(__file__).with_name("scripted_worker.py")


def _start(fleet: Fleet, env: dict[str, str], tmp_path: Path, delay: float, deadline: int) -> tuple[Any, Path, Path]:
    doc = write_config_document(tmp_path / "config.json", fleet.document(batch_size=8))
    marker, log = tmp_path / "batch-started", tmp_path / "worker.log"
    proc_env = subprocess_env(env, doc, worker_id="sigterm-worker", shutdown_deadline_seconds=deadline)
    proc_env.update(AGENTFLEET_TEST_DELAY=str(delay), AGENTFLEET_TEST_MARKER=str(marker))
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(SCRIPT)], env=proc_env, stdout=out, stderr=subprocess.STDOUT)
    return proc, marker, log


def _summary(log: Path) -> dict[str, Any]:
    for line in log.read_text().splitlines():
        if '"worker stopped"' in line:
            return dict(json.loads(line))
    raise AssertionError(f"no summary line in {log.read_text()[-2000:]}")


@pytest.mark.integration
@pytest.mark.slow
def test_sigterm_mid_batch_finishes_it_checkpoints_releases_and_exits_zero(
        fleet: Fleet, aws_env: Any, tmp_path: Path) -> None:
    events = [event("cloudwatch.alarm", f"a{i}", {"want": "notify"}) for i in range(6)]
    positions = fleet.put(events)
    proc, marker, log = _start(fleet, aws_env.env(), tmp_path, delay=2.0, deadline=10)
    try:
        wait_until(marker.exists, 60, "the batch to start")
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert time.monotonic() - sent < 10 + 2, "exited within the deadline (plus process teardown)"
    finally:
        if proc.poll() is None:
            proc.kill()
    summary = _summary(log)
    assert (summary["reason"], summary["within_deadline"], summary["abandoned_batch"]) == ("sigterm", True, False)
    assert len(fleet.decisions()) == len(events), "the in-flight batch finished"
    leases = {lease["shard_id"]: lease for lease in fleet.leases()}
    assert all("owner" not in lease for lease in leases.values()), "every lease released"
    for position in positions:
        assert int(leases[position["shard_id"]]["checkpoint"]) >= int(position["sequence_number"])


@pytest.mark.integration
@pytest.mark.slow
def test_sigterm_past_the_deadline_drops_the_batch_unacknowledged_for_the_next_owner(
        fleet: Fleet, aws_env: Any, tmp_path: Path, running: Any) -> None:
    events = [event("cloudwatch.alarm", f"b{i}", {"want": "notify"}) for i in range(4)]
    fleet.put(events)
    proc, marker, log = _start(fleet, aws_env.env(), tmp_path, delay=60.0, deadline=3)
    try:
        wait_until(marker.exists, 60, "the batch to start")
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert time.monotonic() - sent < 3 + 2
    finally:
        if proc.poll() is None:
            proc.kill()
    summary = _summary(log)
    assert summary["abandoned_batch"] is True and summary["unacknowledged_records"] == len(events)
    assert fleet.decisions() == []
    assert all("owner" not in lease and not lease.get("checkpoint") for lease in fleet.leases())
    # Released, not expired: the next worker starts at once and handles everything.
    handle = running(Worker(fleet.settings(), ScriptedBackend()))
    wait_for_count(fleet.decisions, len(events), 30, "decisions by the next owner")
    assert handle.stop() == 0


class RecordingMetadata:
    """What IMDS would say; the watcher only reads these three."""

    def __init__(self, spot: dict[str, Any] | None = None, lifecycle: str | None = "InService") -> None:
        self.spot, self.lifecycle, self.reads = spot, lifecycle, 0

    def instance_id(self) -> str | None:
        return "i-0123456789abcdef0"

    def spot_interruption(self) -> dict[str, Any] | None:
        self.reads += 1
        return self.spot

    def target_lifecycle_state(self) -> str | None:
        return self.lifecycle


def test_spot_notice_and_termination_hook_request_a_stop() -> None:
    quiet = StopSignal()
    assert not InterruptionWatcher(RecordingMetadata(), quiet, Metrics("f", "off")).check_once()
    assert not quiet.is_set()
    spot = StopSignal()
    assert InterruptionWatcher(RecordingMetadata({"action": "terminate", "time": "2025-01-01T00:00:00Z"}),
                               spot, Metrics("f", "off")).check_once()
    assert (spot.reason, spot.termination_hook_pending) == ("spot_interruption", False)
    hook = StopSignal()
    assert InterruptionWatcher(RecordingMetadata(lifecycle="Terminated"), hook, Metrics("f", "off")).check_once()
    assert (hook.reason, hook.termination_hook_pending) == ("lifecycle_termination", True)


class RecordingAutoScaling:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def complete_lifecycle_action(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


@pytest.mark.integration
def test_scale_in_hook_drains_the_worker_and_completes_the_lifecycle_action(fleet: Fleet, running: Any) -> None:
    fleet.put([event("cloudwatch.alarm", "c0", {"want": "notify"})])
    metadata = RecordingMetadata()
    settings = fleet.settings(asg_name="fleet-asg", termination_hook_name="drain-hook")
    worker = Worker(settings, ScriptedBackend(), metadata=metadata)
    worker.clients.autoscaling = asg = RecordingAutoScaling()
    handle = running(worker)
    wait_for_count(fleet.decisions, 1, 30, "decision")
    metadata.lifecycle = "Terminated"  # Auto Scaling picked this instance for scale-in
    wait_until(lambda: not handle.thread.is_alive(), 20, "the worker to drain")
    assert handle.result["code"] == 0
    assert worker.stop.reason == "lifecycle_termination"
    assert asg.calls == [{"AutoScalingGroupName": "fleet-asg", "LifecycleHookName": "drain-hook",
                          "InstanceId": "i-0123456789abcdef0", "LifecycleActionResult": "CONTINUE"}]
    assert all("owner" not in lease for lease in fleet.leases())
