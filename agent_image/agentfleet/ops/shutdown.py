"""Why and when a worker stops: SIGTERM/SIGINT, a Spot interruption notice, or a scale-in hook.

`StopSignal` is the one flag the loop checks. `InterruptionWatcher` polls instance
metadata (IMDSv2, every 5 s as AWS recommends for Spot notices) in a daemon thread and
sets the flag on a Spot `instance-action` or a target lifecycle state of "Terminated";
the latter also means a termination lifecycle hook is waiting for CONTINUE.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from agentfleet.ops import logs
from agentfleet.ops.metrics import Metrics
from agentfleet.spec import metric_names

log = logs.get(__name__)


class Metadata(Protocol):
    """The slice of agentfleet.ops.instance.InstanceMetadata the watcher needs."""

    def instance_id(self) -> str | None: ...

    def spot_interruption(self) -> dict[str, Any] | None: ...

    def target_lifecycle_state(self) -> str | None: ...


class StopSignal:
    """Set once; remembers the first reason and when it arrived (monotonic)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self.reason = ""
        self.at = 0.0
        self.termination_hook_pending = False

    def set(self, reason: str, *, termination_hook: bool = False) -> None:
        with self._lock:
            self.termination_hook_pending |= termination_hook
            if self._event.is_set():
                return
            self.reason, self.at = reason, self._monotonic()
            self._event.set()
        log.info("stop requested", extra={"reason": reason})

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    def install_signal_handlers(self) -> None:
        """SIGTERM (ECS/ASG/docker stop) and SIGINT (Ctrl-C) both mean: drain and exit 0."""
        def handler(signum: int, _frame: Any) -> None:
            self.set(signal.Signals(signum).name.lower())

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


class InterruptionWatcher:
    """Polls IMDS until stopped; errors are logged and polling goes on (IMDS may be briefly throttled)."""

    def __init__(self, metadata: Metadata, stop: StopSignal, metrics: Metrics, *, interval: float = 5.0) -> None:
        self._metadata, self._stop, self._metrics, self.interval = metadata, stop, metrics, interval
        self._thread: threading.Thread | None = None
        self._done = threading.Event()

    def check_once(self) -> bool:
        """One poll; True if it requested a stop."""
        try:
            notice = self._metadata.spot_interruption()
            if notice is not None:
                self._metrics.count(metric_names.SPOT_INTERRUPTIONS)
                log.warning("spot interruption notice", extra={"notice": notice})
                self._stop.set("spot_interruption")
                return True
            state = self._metadata.target_lifecycle_state()
            if state == "Terminated":
                log.warning("auto scaling is terminating this instance", extra={"target_lifecycle_state": state})
                self._stop.set("lifecycle_termination", termination_hook=True)
                return True
        except Exception as exc:
            log.warning("instance metadata poll failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        return False

    def _loop(self) -> None:
        while not self._done.is_set():
            if self.check_once():
                return
            self._done.wait(self.interval)

    def start(self) -> InterruptionWatcher:
        self._thread = threading.Thread(target=self._loop, name="imds-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
