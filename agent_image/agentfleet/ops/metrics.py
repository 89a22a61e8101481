"""The one metrics emitter: EMF lines on stdout, batched PutMetricData, or nothing.

Names and dimensions come only from `agentfleet.spec.metric_names` (the dashboard reads the
same module); an unknown name is a programming error and raises. Values are aggregated
in memory and flushed every `flush_seconds` and at shutdown, so a busy loop costs one
line (or one API call) per interval, not one per event. Thread-safe.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from agentfleet.ops import logs
from agentfleet.spec import metric_names

log = logs.get(__name__)
_DIMENSIONS = {metric_names.OUTCOME, metric_names.REASON, metric_names.PHASE, metric_names.MARKET, metric_names.ADAPTER,
               metric_names.AGENT, metric_names.REPLICA}
_NOT_METRICS = {metric_names.NAMESPACE, metric_names.FLEET} | _DIMENSIONS
METRIC_NAMES = frozenset(
    v for k, v in vars(metric_names).items() if k.isupper() and isinstance(v, str) and v not in _NOT_METRICS
)
MODES = ("emf", "put", "off")
_MAX_VALUES = 100  # EMF allows up to 100 values per metric per line

Key = tuple[str, str, tuple[tuple[str, str], ...]]  # name, unit, sorted dimensions


class Metrics:
    """Aggregating emitter. `count` sums, `observe` keeps a distribution, `gauge` keeps the last value."""

    def __init__(self, fleet: str, mode: str = "emf", *, stream: IO[str] | None = None, cloudwatch: Any = None,
                 clock: Callable[[], float] = time.time, flush_seconds: float = 10.0) -> None:
        if mode not in MODES:
            raise ValueError(f"metrics_mode must be one of {MODES}, got {mode!r}")
        if mode == "put" and cloudwatch is None:
            raise ValueError("metrics_mode 'put' needs a CloudWatch client")
        self.fleet, self.mode, self._cloudwatch, self._clock = fleet, mode, cloudwatch, clock
        self._stream = stream
        self._flush_seconds = flush_seconds
        self._last_flush = clock()
        self._lock = threading.Lock()
        self._sums: dict[Key, float] = {}
        self._values: dict[Key, list[float]] = {}

    def _key(self, name: str, unit: str, dims: dict[str, str]) -> Key:
        if name not in METRIC_NAMES:
            raise ValueError(f"unknown metric {name!r}; use a name from agentfleet.spec.metric_names")
        unknown = set(dims) - _DIMENSIONS
        if unknown:
            raise ValueError(f"unknown metric dimensions {sorted(unknown)}")
        return name, unit, tuple(sorted((k, str(v)) for k, v in dims.items()))

    def count(self, name: str, value: float = 1.0, /, **dims: str) -> None:
        if self.mode == "off":
            return
        key = self._key(name, "Count", dims)
        with self._lock:
            self._sums[key] = self._sums.get(key, 0.0) + value

    def observe(self, name: str, value: float, unit: str, /, **dims: str) -> None:
        if self.mode == "off":
            return
        key = self._key(name, unit, dims)
        with self._lock:
            values = self._values.setdefault(key, [])
            if len(values) < _MAX_VALUES:
                values.append(float(value))

    def gauge(self, name: str, value: float, unit: str = "Count", /, **dims: str) -> None:
        """A level (backlog): only the latest value in the interval is kept."""
        if self.mode == "off":
            return
        key = self._key(name, unit, dims)
        with self._lock:
            self._values[key] = [float(value)]

    def maybe_flush(self) -> None:
        if self._clock() - self._last_flush >= self._flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Emit everything aggregated so far; failures are logged, never raised (metrics must not stop work)."""
        with self._lock:
            sums, values = self._sums, self._values
            self._sums, self._values = {}, {}
            self._last_flush = self._clock()
        if self.mode == "off" or not (sums or values):
            return
        data: dict[Key, list[float]] = {key: [total] for key, total in sums.items()}
        data.update(values)
        try:
            if self.mode == "emf":
                self._emit_emf(data)
            else:
                self._put(data)
        except Exception as exc:
            log.warning("metrics flush failed", extra={"error": f"{type(exc).__name__}: {exc}", "series": len(data)})

    def _emit_emf(self, data: dict[Key, list[float]]) -> None:
        by_dims: dict[tuple[tuple[str, str], ...], dict[str, tuple[str, list[float]]]] = {}
        for (name, unit, dims), vals in data.items():
            by_dims.setdefault(dims, {})[name] = (unit, vals)
        stream = self._stream or sys.stdout
        now_ms = int(self._clock() * 1000)
        for dims, metrics in by_dims.items():
            names = [metric_names.FLEET] + [k for k, _ in dims]
            line: dict[str, Any] = {
                "_aws": {"Timestamp": now_ms, "CloudWatchMetrics": [{
                    "Namespace": metric_names.NAMESPACE, "Dimensions": [names],
                    "Metrics": [{"Name": n, "Unit": unit} for n, (unit, _) in metrics.items()],
                }]},
                metric_names.FLEET: self.fleet, **dict(dims),
            }
            for name, (_, vals) in metrics.items():
                line[name] = vals[0] if len(vals) == 1 else vals
            stream.write(json.dumps(line) + "\n")
        stream.flush()

    def _put(self, data: dict[Key, list[float]]) -> None:
        entries = []
        for (name, unit, dims), vals in data.items():
            dimensions = [{"Name": metric_names.FLEET, "Value": self.fleet}]
            dimensions += [{"Name": k, "Value": v} for k, v in dims]
            counts: dict[float, float] = {}
            for v in vals:
                counts[v] = counts.get(v, 0.0) + 1.0
            entries.append({"MetricName": name, "Unit": unit, "Dimensions": dimensions,
                            "Values": list(counts), "Counts": list(counts.values())})
        for start in range(0, len(entries), 500):
            self._cloudwatch.put_metric_data(Namespace=metric_names.NAMESPACE, MetricData=entries[start:start + 500])
