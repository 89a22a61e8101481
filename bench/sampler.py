"""Small statistical profilers: sampling (not tracing) keeps the measured code at full speed.

`CpuSampler` samples the main thread every `interval` seconds of *CPU time* (SIGPROF), so
time a busy machine spends running other processes is not counted, and nothing is biased
towards the points where a thread releases the GIL. `WallSampler` is a daemon thread that
samples other threads every `interval` seconds of wall time (waits included: model, I/O).
A sample is a stack of frames, innermost last, each "path-suffix:qualname". Attribution is
inclusive: a sample counts for every label whose pattern appears anywhere in its stack,
so nested labels add up to more than 100%.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any, Self

Stack = tuple[str, ...]


def _frame_name(frame: FrameType) -> str:
    path = frame.f_code.co_filename.replace("\\", "/")
    for marker in ("/site-packages/", "/agent_image/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{frame.f_code.co_qualname}"


def stack_of(frame: FrameType | None) -> Stack:
    names: list[str] = []
    while frame is not None:
        names.append(_frame_name(frame))
        frame = frame.f_back
    return tuple(reversed(names))


class Ticker:
    """A daemon thread that calls `tick()` every `interval` seconds of wall time until `stop()`."""

    def __init__(self, interval: float, name: str) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def tick(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()


class Profile:
    """Samples as (thread name, stack) -> count, and the two ways this package reads them."""

    def __init__(self) -> None:
        self.stacks: Counter[tuple[str, Stack]] = Counter()

    def samples(self, thread: str | None = None) -> int:
        return sum(n for (name, _), n in self.stacks.items() if thread is None or name == thread)

    def inclusive(self, labels: Mapping[str, str], thread: str | None = None) -> dict[str, float]:
        """label -> share of samples whose stack has a frame containing the label's pattern."""
        total = self.samples(thread) or 1
        hits: Counter[str] = Counter()
        for (name, stack), n in self.stacks.items():
            if thread is not None and name != thread:
                continue
            for label, pattern in labels.items():
                if any(pattern in frame for frame in stack):
                    hits[label] += n
        return {label: hits[label] / total for label in labels}

    def innermost(self, top: int = 12, thread: str | None = None, depth: int = 1) -> list[tuple[str, float]]:
        """The `top` innermost frames (the last `depth` of each stack joined) by share of samples."""
        total = self.samples(thread) or 1
        counts: Counter[str] = Counter()
        for (name, stack), n in self.stacks.items():
            if thread is None or name == thread:
                counts[" < ".join(reversed(stack[-depth:]))] += n
        return [(frame, n / total) for frame, n in counts.most_common(top)]


class CpuSampler(Profile):
    """The main thread's stack every `interval` seconds of process CPU time (SIGPROF; main thread only)."""

    def __init__(self, interval: float = 0.001) -> None:
        super().__init__()
        self.interval = interval
        self.running = False
        self._previous: Any = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stacks[("MainThread", stack_of(frame))] += 1

    def start(self) -> CpuSampler:
        self._previous = signal.signal(signal.SIGPROF, self._on_signal)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)
        self.running = True
        return self

    def stop(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, self._previous or signal.SIG_DFL)
        self.running = False


class WallSampler(Profile, Ticker):
    """Every thread but itself, every `interval` seconds of wall time, until `stop()`.

    `on_tick(epoch seconds, {thread name: stack})` sees each tick as a whole (to classify what the
    process as a whole was doing); `keep_stacks=False` skips the per-stack counts.
    """

    def __init__(self, interval: float = 0.005, on_tick: Callable[[float, dict[str, Stack]], None] | None = None,
                 keep_stacks: bool = True) -> None:
        Profile.__init__(self)
        Ticker.__init__(self, interval, "bench-sampler")
        self.on_tick, self.keep_stacks = on_tick, keep_stacks
        self.ticks = 0

    def tick(self) -> None:
        me = threading.get_ident()
        names = {t.ident: t.name for t in threading.enumerate()}
        tick = {names.get(ident, str(ident)): stack_of(frame)
                for ident, frame in sys._current_frames().items() if ident != me}
        self.ticks += 1
        if self.keep_stacks:
            for name, stack in tick.items():
                self.stacks[(name, stack)] += 1
        if self.on_tick is not None:
            self.on_tick(time.time(), tick)
