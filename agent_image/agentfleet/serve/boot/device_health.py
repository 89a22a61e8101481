"""Is this instance's Neuron hardware fit to serve? Checked at boot before any compile, and while serving.

Sources (aws-neuron/aws-neuron-sdk, Neuron 2.32 docs, read 2026-12-01):
- tools/neuron-sys-tools/neuron-ls.rst: `neuron-ls --json-output` (`-j`) prints a JSON array, one object
  per device with `neuron_device`, `nc_count` (logical NeuronCores), `neuroncore_ids` and
  `neuron_processes` (`pid`, `command`, `neuron_runtime_version`) for processes holding the device.
- tools/neuron-sys-tools/neuron-monitor-user-guide.rst: without a config file neuron-monitor collects
  every metric group every 5 s and writes one complete JSON report per line; hardware errors are
  `system_data.neuron_hw_counters.neuron_devices[].{mem_ecc_uncorrected, sram_ecc_uncorrected}` and
  `neuron_runtime_data[].report.execution_stats.error_summary.hardware` ("hardware errors such as
  uncorrectable ECC issues"). Corrected ECC events are normal and only logged.
"""

from __future__ import annotations

import json
import selectors
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agentfleet.ops import logs

log = logs.get(__name__)

NEURON_LS = ("neuron-ls", "--json-output")
NEURON_MONITOR = ("neuron-monitor",)


class DeviceUnhealthy(RuntimeError):
    """The Neuron devices are missing, do not answer, or report hardware errors."""


@dataclass(frozen=True)
class Devices:
    count: int
    cores: int  # logical NeuronCores over all devices (nc_count summed)
    holders: tuple[int, ...]  # pids of processes holding any device
    # per device: (its neuroncore_ids, pids holding it); neuron-ls.rst: the ids are the ones
    # NEURON_RT_VISIBLE_CORES selects
    by_device: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = ()

    def holders_of(self, cores: Sequence[int] | None) -> tuple[int, ...]:
        """Pids holding a device with any of these cores (all devices when cores is None)."""
        if cores is None:
            return self.holders
        wanted = set(cores)
        return tuple(sorted({pid for ids, pids in self.by_device if wanted & set(ids) for pid in pids}))


def parse_neuron_ls(text: str) -> Devices:
    try:
        doc = json.loads(text)
        if not isinstance(doc, list):
            raise TypeError("not a JSON array")
        cores = sum(int(d["nc_count"]) for d in doc)
        holders = sorted({int(p["pid"]) for d in doc for p in (d.get("neuron_processes") or [])})
        by_device = tuple((tuple(int(i) for i in d.get("neuroncore_ids") or ()),
                           tuple(sorted({int(p["pid"]) for p in (d.get("neuron_processes") or [])}))) for d in doc)
    except (ValueError, TypeError, KeyError) as exc:
        raise DeviceUnhealthy(f"neuron-ls output is not the documented JSON ({exc!r}): {text[:200]!r}") from None
    return Devices(len(doc), cores, tuple(holders), by_device)


def list_devices(command: Sequence[str] = NEURON_LS, timeout_s: float = 60) -> Devices:
    """Run neuron-ls; DeviceUnhealthy if it is missing, fails, hangs or lists no device."""
    if shutil.which(command[0]) is None:
        raise DeviceUnhealthy(f"{command[0]} not found: the Neuron tools (aws-neuronx-tools) are not installed")
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise DeviceUnhealthy(f"{' '.join(command)} did not answer within {timeout_s:.0f} s") from None
    if done.returncode != 0:
        raise DeviceUnhealthy(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()[:300]}")
    devices = parse_neuron_ls(done.stdout)
    if devices.count == 0 or devices.cores == 0:
        raise DeviceUnhealthy("neuron-ls lists no Neuron device (driver not loaded, or devices not passed "
                              "into the container)")
    return devices


def hardware_errors(report: dict[str, Any]) -> list[str]:
    """Uncorrected ECC and runtime hardware errors in one neuron-monitor report ([] when clean)."""
    found: list[str] = []
    counters = ((report.get("system_data") or {}).get("neuron_hw_counters") or {}).get("neuron_devices") or []
    for device in counters:
        for name in ("mem_ecc_uncorrected", "sram_ecc_uncorrected"):
            if int(device.get(name, 0) or 0) > 0:
                found.append(f"device {device.get('neuron_device_index', '?')}: {name}={device[name]}")
    for runtime in report.get("neuron_runtime_data") or []:
        summary = (((runtime.get("report") or {}).get("execution_stats") or {}).get("error_summary") or {})
        if int(summary.get("hardware", 0) or 0) > 0:
            found.append(f"runtime pid {runtime.get('pid', '?')}: execution hardware errors={summary['hardware']}")
    return found


def first_report(command: Sequence[str] = NEURON_MONITOR, timeout_s: float = 30) -> dict[str, Any]:
    """Start neuron-monitor, read its first report line, stop it."""
    if shutil.which(command[0]) is None:
        raise DeviceUnhealthy(f"{command[0]} not found: the Neuron tools (aws-neuronx-tools) are not installed")
    process = subprocess.Popen(list(command), stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                    break
                line = process.stdout.readline()
                if not line:
                    raise DeviceUnhealthy(f"{command[0]} exited ({process.poll()}) before its first report")
                if line.strip():
                    try:
                        return dict(json.loads(line))
                    except (ValueError, TypeError):
                        raise DeviceUnhealthy(f"{command[0]} wrote a report that is not JSON: {line[:200]!r}") from None
        raise DeviceUnhealthy(f"{command[0]} wrote no report within {timeout_s:.0f} s")
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def check_at_boot(*, needed_cores: int, neuron_ls: Sequence[str] = NEURON_LS,
                  neuron_monitor: Sequence[str] = NEURON_MONITOR) -> Devices:
    """Before compiling: the devices answer, hold enough cores for one replica, report no hardware error."""
    devices = list_devices(neuron_ls)
    if devices.cores < needed_cores:
        raise DeviceUnhealthy(f"neuron-ls shows {devices.cores} logical NeuronCores; tensor_parallel_degree "
                              f"{needed_cores} needs at least that many")
    errors = hardware_errors(first_report(neuron_monitor))
    if errors:
        raise DeviceUnhealthy("neuron-monitor reports hardware errors: " + "; ".join(errors[:5]))
    log.info("neuron devices healthy", extra={"devices": devices.count, "cores": devices.cores,
                                               "holders": list(devices.holders)})
    return devices


def wait_cores_free(*, timeout_s: float, neuron_ls: Sequence[str] = NEURON_LS, poll_s: float = 0.5,
                    exclude: Callable[[int], bool] = lambda pid: False, cores: Sequence[int] | None = None) -> None:
    """Block until no process holds a Neuron device (only the devices of `cores` when given: the other
    replicas keep theirs); a stopped server releases its cores a little after it exits. TimeoutError
    naming the holders otherwise. Without neuron-ls there is nothing to ask."""
    if shutil.which(neuron_ls[0]) is None:
        log.warning("neuron-ls not found; cannot confirm the NeuronCores are free", extra={"command": neuron_ls[0]})
        return
    deadline = time.monotonic() + timeout_s
    while True:
        holders = [pid for pid in list_devices(neuron_ls).holders_of(cores) if not exclude(pid)]
        if not holders:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"NeuronCores still held by pids {holders} after {timeout_s:.0f} s (cores busy)")
        time.sleep(poll_s)
