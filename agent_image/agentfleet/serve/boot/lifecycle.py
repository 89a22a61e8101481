"""Keeping Auto Scaling informed while booting and serving.

While the launch hook waits (weights download, compile: can outlast the hook's HeartbeatTimeout),
`LifecycleHeartbeat` calls RecordLifecycleActionHeartbeat every `interval_s` so the action does not
time out into its default result. After the instance is InService, `FatalGuard.fail` marks it
Unhealthy (SetInstanceHealth, grace period ignored) once, so the group replaces it at once instead of
keeping a broken instance counted in service. Both do nothing outside an Auto Scaling group.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agentfleet.ops import instance, logs

log = logs.get(__name__)


@contextmanager
def lifecycle_heartbeat(asg_client: Any, *, asg_name: str, hook_name: str, instance_id: str | None,
                        interval_s: float) -> Iterator[threading.Event]:
    """Heartbeat the launch action while the block runs; the yielded event is set when beats stopped
    because the action is gone. A failed call is logged and retried on the next beat."""
    gone = threading.Event()
    if not (asg_client is not None and asg_name and hook_name and instance_id):
        yield gone
        return
    if interval_s <= 0:
        raise ValueError(f"lifecycle_heartbeat_seconds must be > 0, got {interval_s}")
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval_s):
            try:
                if not instance.record_lifecycle_heartbeat(asg_client, asg_name=asg_name, hook_name=hook_name,
                                                           instance_id=instance_id):
                    gone.set()
                    return
                log.info("lifecycle action heartbeat sent", extra={"asg": asg_name, "hook": hook_name})
            except Exception:  # throttling or a network blip must not stop the boot; the next beat retries
                log.warning("lifecycle heartbeat failed", extra={"asg": asg_name}, exc_info=True)

    thread = threading.Thread(target=beat, name="lifecycle-heartbeat", daemon=True)
    thread.start()
    try:
        yield gone
    finally:
        stop.set()
        thread.join(timeout=10)


class FatalGuard:
    """After InService: the first fatal error marks the instance Unhealthy; later ones only log."""

    def __init__(self, asg_client: Any, instance_id: str | None, *, in_group: bool) -> None:
        self.asg, self.instance_id, self.in_group = asg_client, instance_id, in_group
        self._lock = threading.Lock()
        self.reason: str | None = None

    def fail(self, reason: str) -> None:
        with self._lock:
            if self.reason is not None:
                log.error("further fatal error", extra={"reason": reason})
                return
            self.reason = reason
        if not (self.in_group and self.asg is not None and self.instance_id):
            log.error("fatal error outside an Auto Scaling group; nothing to mark", extra={"reason": reason})
            return
        try:
            instance.set_unhealthy(self.asg, instance_id=self.instance_id, reason=reason)
        except Exception:
            log.exception("SetInstanceHealth failed; the group's own health checks must find this instance")
