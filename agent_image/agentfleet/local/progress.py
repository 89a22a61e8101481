"""Progress on stderr: one redrawn line of bars on a terminal, a plain line every few seconds otherwise."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO


@dataclass
class Counts:
    sent: int = 0
    total: int = 0
    accounted: int = 0  # decided or quarantined
    quarantined: int = 0
    actions_done: int = 0
    actions_started: int = 0
    approvals: int = 0
    workers_alive: int = 0


def bar(done: int, total: int, width: int = 20) -> str:
    filled = 0 if total <= 0 else min(width, done * width // total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


class Progress:
    """Call `update(counts)` as often as you like; it draws at most every `interval` seconds off a tty."""

    def __init__(self, stream: TextIO | None = None, interval: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = interval
        self._last = 0.0
        self._started = time.monotonic()

    def line(self, c: Counts) -> str:
        elapsed = time.monotonic() - self._started
        return (f"{elapsed:6.0f}s  sent {bar(c.sent, c.total, 10)} {c.sent}/{c.total}  "
                f"decided {bar(c.accounted, c.total)} {c.accounted}/{c.total} (quarantined {c.quarantined})  "
                f"actions {bar(c.actions_done, c.actions_started, 10)} {c.actions_done}/{c.actions_started}  "
                f"approved {c.approvals}  workers {c.workers_alive}")

    def update(self, c: Counts, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line(c))
            self.stream.flush()
        elif force or now - self._last >= self.interval:
            self.stream.write(self.line(c) + "\n")
            self.stream.flush()
            self._last = now

    def note(self, message: str) -> None:
        """A message on its own line (the bar redraws under it)."""
        self.stream.write(("\r\x1b[2K" if self.tty else "") + message + "\n")
        self.stream.flush()

    def finish(self, c: Counts) -> None:
        if self.tty:
            self.update(c)
            self.stream.write("\n")
        else:
            self.update(c, force=True)
        self.stream.flush()
