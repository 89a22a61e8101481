"""Prefix-cache counters from a vLLM server's Prometheus `/metrics`.

vLLM declares `Counter(name="vllm:prefix_cache_queries")` ("Prefix cache queries, in terms of number of
queried tokens") and `Counter(name="vllm:prefix_cache_hits")` ("... number of cached tokens") in
vllm-project/vllm vllm/v1/metrics/loggers.py (PrometheusStatLogger; read at stored commit 005a810,
2026-12-01, whether the 0.24.0 tag has the same literals is UNVERIFIED). prometheus_client exposes a
Counter with `_total` appended, and labels it per engine (model_name, engine), so both spellings are read
and every label set is summed. A server that exposes neither gives None (no hit rate, never a guess).
"""

from __future__ import annotations

import re
import urllib.request

QUERIES = "vllm:prefix_cache_queries"
HITS = "vllm:prefix_cache_hits"
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(?P<value>\S+)")


def parse_prefix_counters(text: str) -> tuple[float, float] | None:
    """(hits, queries) summed over label sets, or None when the text has no query counter."""
    sums: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        name = match.group("name").removesuffix("_total")
        if name in (QUERIES, HITS):
            try:
                sums[name] = sums.get(name, 0.0) + float(match.group("value"))
            except ValueError:
                continue
    if QUERIES not in sums:
        return None
    return sums.get(HITS, 0.0), sums[QUERIES]


def fetch_prefix_counters(root_url: str, timeout_s: float = 2.0) -> tuple[float, float] | None:
    """GET {root}/metrics and parse it; None if the server does not answer or exposes no counters."""
    try:
        with urllib.request.urlopen(root_url.rstrip("/") + "/metrics", timeout=timeout_s) as resp:  # noqa: S310
            return parse_prefix_counters(resp.read().decode("utf-8", "replace"))
    except (OSError, ValueError):
        return None


class HitRateWindow:
    """Hit rate per replica over the window since the previous call (counters are cumulative)."""

    def __init__(self, count: int) -> None:
        self._last: list[tuple[float, float] | None] = [None] * count

    def update(self, index: int, counters: tuple[float, float] | None) -> float | None:
        previous, self._last[index] = self._last[index], counters
        if counters is None:
            return None
        hits, queries = counters
        if previous is not None and queries >= previous[1]:  # a restarted server starts its counters at 0
            hits, queries = hits - previous[0], queries - previous[1]
        return hits / queries if queries > 0 else None
