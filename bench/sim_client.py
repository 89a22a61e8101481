"""Client side of the serving simulator: start it in its own process, read its stats and metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def simulator(replicas: int, **overrides: Any) -> Iterator[list[str]]:
    """`python -m bench.serving_sim` in its own process; yields the replicas' URLs."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "bench.serving_sim", "--replicas", str(replicas), "--config",
                             json.dumps(overrides)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the serving simulator exited with {proc.wait()} before serving")
        yield json.loads(line)["urls"]
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def sim_stats(urls: list[str]) -> dict[str, float]:
    """The replicas' /sim/stats, summed."""
    total: dict[str, float] = {}
    for url in urls:
        with urllib.request.urlopen(f"{url}/sim/stats", timeout=10) as resp:  # loopback only
            for key, value in json.loads(resp.read()).items():
                total[key] = total.get(key, 0.0) + float(value)
    return total


# Gauges and configuration in /sim/stats: read as they are at the end, never subtracted.
LEVELS = frozenset({"slots", "running", "waiting", "max_running", "kv_usage"})


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """What happened between two /sim/stats reads: counters subtracted, levels as at the end."""
    return {k: v if k in LEVELS else v - before.get(k, 0.0) for k, v in after.items()}


def read_counters(text: str) -> dict[str, float]:
    """Prometheus text -> {sample name: value summed over label sets}; comments skipped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            name = series.split("{", 1)[0]
            out[name] = out.get(name, 0.0) + float(value)
    return out


def metrics(urls: list[str]) -> dict[str, float]:
    """The replicas' /metrics samples, summed over replicas and label sets."""
    total: dict[str, float] = {}
    for url in urls:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:  # loopback only
            for key, value in read_counters(resp.read().decode()).items():
                total[key] = total.get(key, 0.0) + value
    return total
