"""Client side of the serving simulator: start it in its own process, read its stats and metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from agentfleet.serve.model.base import GenerationRequest
from agentfleet.serve.model.openai_http import OpenAIHTTPBackend

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


def drive_continuously(urls: list[str], requests: list[tuple[str, GenerationRequest]], *, in_flight: int,
                       seconds: float) -> dict[str, float]:
    """The ceiling: `in_flight` client threads, each sending its next prompt as soon as the last returns.

    What a feeder with no work of its own between requests gets from the simulator, measured as the
    worker is: from the first request while a backlog remains (until the list runs out or `seconds`
    pass), so a worker's figures can be read against what the harness itself allows. Requests go to
    the replicas through the runtime's client, routed by their key (as the worker's are).
    """
    client = OpenAIHTTPBackend(urls, "bench/ceiling", batch_size=in_flight, max_prompt_tokens=1 << 20,
                               max_new_tokens=256, max_num_seqs=max(1, in_flight // len(urls)))
    feed, lock, exhausted, finished = iter(requests), threading.Lock(), threading.Event(), [0]

    def loop() -> None:
        while not exhausted.is_set():
            with lock:
                key, request = next(feed, (None, None))
            if request is None:
                exhausted.set()
                return
            client.generate([replace(request, affinity_key=str(key))])
            with lock:
                finished[0] += 1

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(in_flight)]
    before, began = sim_stats(urls), time.perf_counter()
    for thread in threads:
        thread.start()
    exhausted.wait(seconds)
    exhausted.set()  # the window is over: threads finish the request they hold and stop
    moved, wall, done = delta(sim_stats(urls), before), time.perf_counter() - began, finished[0]
    for thread in threads:
        thread.join(timeout=120)
    client.close()
    return {"utilization": moved["busy_slot_s"] / moved["available_slot_s"], "decisions_per_s": done / wall,
            "decisions": done, "in_flight": in_flight, "wall_s": round(wall, 2)}
