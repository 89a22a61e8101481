"""NeuronCore utilization and device memory from `neuron-monitor` (aws-neuronx-tools) into metrics.

neuron-monitor streams one JSON report per period on stdout. Per the Neuron Monitor User
Guide, each entry of `neuron_runtime_data[]` has a `report` with
  neuroncore_counters.neuroncores_in_use.{core index}.neuroncore_utilization   (percent)
  memory_used.neuron_runtime_used_bytes.neuron_device                          (bytes)
and an `error` string. We publish every core's utilization (as a distribution) and the device
memory summed over runtimes; a report with hardware errors (uncorrected ECC, runtime hardware
errors: device_health.hardware_errors) is passed to `on_hardware_error`, which the boot entry point
wires to SetInstanceHealth Unhealthy. Runs only where neuron-monitor exists (Neuron instances).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from agentfleet.ops import logs
from agentfleet.ops.metrics import Metrics
from agentfleet.serve.boot.device_health import hardware_errors
from agentfleet.spec import metric_names

log = logs.get(__name__)


@dataclass(frozen=True)
class NeuronSample:
    core_utilization: dict[str, float] = field(default_factory=dict)  # "runtime:core" -> percent
    device_memory_bytes: int = 0
    errors: tuple[str, ...] = ()


def _group(report: dict[str, Any], name: str, errors: list[str]) -> dict[str, Any]:
    group = report.get(name) or {}
    if not isinstance(group, dict):
        return {}
    if group.get("error"):
        errors.append(f"{name}: {group['error']}")
    return group


def parse_report(doc: dict[str, Any]) -> NeuronSample:
    """One neuron-monitor report -> sample. Missing groups count as zero; reported errors are kept."""
    if not isinstance(doc, dict):
        raise ValueError("neuron-monitor report must be a JSON object")
    runtimes = doc.get("neuron_runtime_data") or []
    if not isinstance(runtimes, list):
        raise ValueError("neuron_runtime_data must be a list")
    utilization: dict[str, float] = {}
    memory = 0
    errors: list[str] = []
    for position, runtime in enumerate(runtimes):
        if runtime.get("error"):
            errors.append(str(runtime["error"]))
        report = runtime.get("report") or {}
        rt = str(runtime.get("pid", runtime.get("neuron_runtime_index", position)))
        cores = _group(report, "neuroncore_counters", errors).get("neuroncores_in_use") or {}
        for index, core in cores.items():
            utilization[f"{rt}:{index}"] = float(core.get("neuroncore_utilization", 0.0))
        used = _group(report, "memory_used", errors).get("neuron_runtime_used_bytes") or {}
        memory += int(used.get("neuron_device", 0))
    return NeuronSample(utilization, memory, tuple(errors))


def publish(sample: NeuronSample, metrics: Metrics) -> None:
    for value in sample.core_utilization.values():
        metrics.observe(metric_names.NEURON_CORE_UTILIZATION, value, "Percent")
    metrics.gauge(metric_names.NEURON_DEVICE_MEMORY_USED, float(sample.device_memory_bytes), "Bytes")


HardwareErrorHandler = Callable[[str], None]


def consume(lines: Iterable[str], metrics: Metrics, stop: threading.Event | None = None,
            on_hardware_error: HardwareErrorHandler | None = None) -> int:
    """Publish each report line; a malformed line is logged and skipped. Returns reports published."""
    published = 0
    for line in lines:
        if stop is not None and stop.is_set():
            break
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            sample = parse_report(doc)
            broken = hardware_errors(doc)
        except (ValueError, TypeError, AttributeError) as exc:
            log.warning("skipping malformed neuron-monitor report", extra={"reason": str(exc)[:200]})
            continue
        if sample.errors:
            log.warning("neuron-monitor reported errors", extra={"errors": list(sample.errors)[:5]})
        if broken:
            log.error("neuron-monitor reports hardware errors", extra={"errors": broken[:5]})
            if on_hardware_error is not None:
                on_hardware_error("neuron hardware errors: " + "; ".join(broken[:5]))
        publish(sample, metrics)
        metrics.maybe_flush()
        published += 1
    return published


class NeuronMonitor:
    """Runs `neuron-monitor` as a child and publishes its reports from a daemon thread."""

    def __init__(self, metrics: Metrics, command: tuple[str, ...] = ("neuron-monitor",),
                 on_hardware_error: HardwareErrorHandler | None = None) -> None:
        self.metrics, self.command, self.on_hardware_error = metrics, command, on_hardware_error
        self._stop = threading.Event()
        self._process: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """False (and a log line) where neuron-monitor is not installed, e.g. local mode."""
        if shutil.which(self.command[0]) is None:
            log.info("neuron-monitor not found; Neuron metrics off", extra={"command": self.command[0]})
            return False
        self._process = subprocess.Popen(list(self.command), stdout=subprocess.PIPE, text=True)
        stdout = self._process.stdout
        assert stdout is not None
        self._thread = threading.Thread(target=consume, args=(stdout, self.metrics, self._stop, self.on_hardware_error),
                                        name="neuron-monitor", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
        if self._thread is not None:
            self._thread.join(timeout=5)
