"""Per-replica gauges: slot utilization each second (cheap, in the main loop) and vLLM's prefix-cache
hit rate each minute (an HTTP read of every replica's /metrics, so on its own thread, never the loop's)."""

from __future__ import annotations

import threading

from agentfleet.ops import logs
from agentfleet.ops.metrics import Metrics
from agentfleet.spec import metric_names

log = logs.get(__name__)
PREFIX_CACHE_PERIOD_S = 60.0


def replica_gauges(metrics: Metrics, model: object) -> None:
    """ReplicaUtilization (busy slots / slots, percent) per live replica of a backend that routes over
    replicas (serve/model/openai_http.OpenAIHTTPBackend.replica_load); a replica that is down is skipped."""
    load = getattr(model, "replica_load", None)
    if load is None:
        return
    for index, (busy, slots) in enumerate(load()):
        if slots > 0:
            metrics.gauge(metric_names.REPLICA_UTILIZATION, 100.0 * busy / slots, "Percent",
                          **{metric_names.REPLICA: str(index)})


def prefix_cache_gauges(metrics: Metrics, model: object) -> int:
    """PrefixCacheHitRate (percent) per replica since the previous call, where the server counted any
    query (OpenAIHTTPBackend.prefix_cache_hit_rate); returns how many replicas reported."""
    rates = getattr(model, "prefix_cache_hit_rate", None)
    if rates is None:
        return 0
    reported = 0
    for index, rate in enumerate(rates()):
        if rate is not None:
            metrics.gauge(metric_names.PREFIX_CACHE_HIT_RATE, 100.0 * rate, "Percent",
                          **{metric_names.REPLICA: str(index)})
            reported += 1
    return reported


class PrefixCacheWatcher:
    """Emits prefix_cache_gauges every `period_s` on a daemon thread until `stop()`."""

    def __init__(self, metrics: Metrics, model: object, period_s: float = PREFIX_CACHE_PERIOD_S) -> None:
        self.metrics, self.model, self.period_s = metrics, model, period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prefix-cache", daemon=True)

    def start(self) -> PrefixCacheWatcher:
        if getattr(self.model, "prefix_cache_hit_rate", None) is not None:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                prefix_cache_gauges(self.metrics, self.model)
            except Exception as exc:  # a metric read must never take the worker down
                log.warning("prefix-cache metrics read failed", extra={"error": f"{type(exc).__name__}: {exc}"})
