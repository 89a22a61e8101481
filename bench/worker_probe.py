"""Wall-clock sampling inside one local-fleet worker process: what it is doing, tick by tick.

`bench/probe_site/sitecustomize.py` calls `install()` in every Python process started with that
folder on PYTHONPATH; only the worker whose AGENTFLEET_WORKER_ID equals BENCH_SAMPLE_WORKER
samples. Every 10 ms it classifies the batch thread (the decision pipeline) and the main thread
(the loop: leases, reads, checkpoints), and at exit writes BENCH_SAMPLE_OUT (JSON).

Classes: model (inside the backend's generate), emulator (a botocore call blocked on its HTTP
socket: moto is working), sdk (botocore's own client-side work), idle (waiting on an event,
a queue or a sleep), runtime (any other Python: the agentfleet code itself).
The worker as a whole, per tick: the batch thread's class while a batch runs (the model is
the critical path), otherwise the main thread's.
"""

from __future__ import annotations

import atexit
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from bench.sampler import Stack, WallSampler

_WAITS = ("threading.py:Event.wait", "threading.py:Condition.wait", "queue.py:", "selectors.py:", "time.sleep",
          "threading.py:Thread.join")
_SOCKET = ("socket.py:", "ssl.py:", "http/client.py:", "urllib3/util/wait.py", "selectors.py:")
CLASSES = ("model", "emulator", "sdk", "runtime", "idle")


def classify_thread(stack: Stack) -> str:
    if any("agentfleet/serve/model/" in f and ".generate" in f for f in stack):
        return "model"
    innermost = stack[-1] if stack else ""
    if any("botocore/" in f for f in stack):
        return "emulator" if any(s in innermost for s in _SOCKET) else "sdk"
    if any(w in innermost for w in _WAITS):
        return "idle"
    return "runtime"


def classify(tick: dict[str, Stack]) -> tuple[str, str, str]:
    """(worker, main thread, batch thread or "") for one tick."""
    main = classify_thread(tick["MainThread"]) if "MainThread" in tick else "idle"
    batch = classify_thread(tick["batch"]) if "batch" in tick else ""
    return (batch or main), main, batch


def aws_caller(stack: Stack) -> str:
    """The innermost agentfleet frame of a stack: which runtime call an AWS request belongs to."""
    return next((f.split("agentfleet/", 1)[1] for f in reversed(stack) if "agentfleet/" in f and "retry.py" not in f),
                "?")


class Recorder:
    """The tick timeline, and for emulator/sdk ticks which runtime call was waiting (per thread)."""

    def __init__(self) -> None:
        self.timeline: list[tuple[float, str, str, str]] = []
        self.aws_calls: dict[str, Counter[str]] = {"MainThread": Counter(), "batch": Counter()}

    def __call__(self, at: float, tick: dict[str, Stack]) -> None:
        worker, main, batch = classify(tick)
        self.timeline.append((round(at, 3), worker, main, batch))
        for thread, cls in (("MainThread", main), ("batch", batch)):
            if cls in ("emulator", "sdk"):
                self.aws_calls[thread][aws_caller(tick[thread])] += 1


def _write(sampler: WallSampler, recorder: Recorder, path: Path) -> None:
    sampler.stop()
    top: dict[str, Any] = {}
    for thread in ("MainThread", "batch"):
        top[thread] = [(f, round(v, 3)) for f, v in sampler.innermost(15, thread=thread, depth=2)]
    counts = Counter(c for _, c, _, _ in recorder.timeline)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"interval_s": sampler.interval, "ticks": sampler.ticks, "counts": counts,
                                "innermost": top, "aws_calls": recorder.aws_calls, "timeline": recorder.timeline}),
                    encoding="utf-8")


def install() -> None:
    wanted = os.environ.get("BENCH_SAMPLE_WORKER")
    if not wanted or os.environ.get("AGENTFLEET_WORKER_ID") != wanted:
        return
    recorder = Recorder()
    sampler = WallSampler(interval=0.01, on_tick=recorder).start()
    atexit.register(_write, sampler, recorder, Path(os.environ.get("BENCH_SAMPLE_OUT", "worker-profile.json")))
