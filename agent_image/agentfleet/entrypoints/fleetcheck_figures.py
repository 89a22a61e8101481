"""Fleet check, part 2: the figures from what was measured (pure functions, no AWS calls).

Window: from the first event's put (this machine's clock) to the last decision's `at` (the worker's
clock; EC2 instances keep time with the Amazon Time Sync Service, so a large skew means this machine's
clock is off -- the report shows both ends). Rates are over that window, so they are the rates at the
load this check offered, not the fleet's peak unless the check kept it saturated (send more events).
$/M tokens = hourly price / (tokens per second per instance x 3600) x 1e6.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

SECONDS_PER_HOUR = 3600.0


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (the smallest value with at least q% of values at or below it); None if empty."""
    if not values:
        return None
    if not 0 < q <= 100:
        raise ValueError(f"percentile q must be in (0, 100], got {q}")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100)
    return ordered[int(rank) - 1]


def dollars_per_million_tokens(price_per_hour: float | None, tokens_per_second_per_instance: float) -> float | None:
    """What a million tokens cost at this throughput; None without a price or without throughput."""
    if price_per_hour is None or tokens_per_second_per_instance <= 0:
        return None
    return price_per_hour / (tokens_per_second_per_instance * SECONDS_PER_HOUR) * 1e6


@dataclass(frozen=True)
class Measured:
    """The run's figures from its decisions and the instances that served them."""

    decisions: int
    tokens: int
    window_s: float
    instances: int
    latencies_ms: tuple[float, ...]

    @property
    def decisions_per_second(self) -> float:
        return self.decisions / self.window_s if self.window_s > 0 else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.window_s if self.window_s > 0 else 0.0

    def per_instance(self, rate: float) -> float:
        return rate / self.instances if self.instances > 0 else 0.0


def measure(put_at: Mapping[str, float], decisions: Sequence[Mapping[str, Any]], instances: int) -> Measured:
    """Figures from the run's decisions (audit items with event_ids, at, prompt/completion tokens) and
    the put time of each event id. Latency is per decision: its event's put -> the decision's `at`."""
    latencies, ends = [], []
    for d in decisions:
        at = epoch(str(d["at"]))
        ends.append(at)
        starts = [put_at[e] for e in d.get("event_ids", []) if e in put_at]
        if starts:
            latencies.append((at - min(starts)) * 1000.0)
    tokens = sum(int(d.get("prompt_tokens", 0)) + int(d.get("completion_tokens", 0)) for d in decisions)
    window = max(ends) - min(put_at.values()) if ends and put_at else 0.0
    return Measured(len(decisions), tokens, window, instances, tuple(latencies))


def report(measured: Measured, *, price_per_hour: float | None, outcomes: Counter[str]) -> dict[str, Any]:
    """The figures section of the report JSON (rounded for reading; the inputs are kept alongside)."""
    tps_instance = measured.per_instance(measured.tokens_per_second)
    cost = dollars_per_million_tokens(price_per_hour, tps_instance)
    p50, p99 = percentile(measured.latencies_ms, 50), percentile(measured.latencies_ms, 99)
    return {
        "decisions": measured.decisions, "tokens": measured.tokens, "window_s": round(measured.window_s, 3),
        "instances": measured.instances,
        "decisions_per_second": round(measured.decisions_per_second, 4),
        "decisions_per_second_per_instance": round(measured.per_instance(measured.decisions_per_second), 4),
        "tokens_per_second": round(measured.tokens_per_second, 2),
        "tokens_per_second_per_instance": round(tps_instance, 2),
        "latency_ms": {"p50": None if p50 is None else round(p50, 1), "p99": None if p99 is None else round(p99, 1)},
        "price_per_hour": price_per_hour,
        "dollars_per_million_tokens": None if cost is None else round(cost, 4),
        "decisions_by_outcome": dict(outcomes.most_common()),
    }


def throughput_file(instance_type: str, figures: Mapping[str, Any], source: str) -> dict[str, Any]:
    """What `make cost ARGS="--throughput FILE"` reads: per-instance rates keyed by instance type."""
    return {instance_type: {"tokens_per_second": figures["tokens_per_second_per_instance"],
                            "decisions_per_second": figures["decisions_per_second_per_instance"],
                            "source": source}}


def read_hourly_price(prices_file: Path, instance_type: str) -> tuple[float | None, str]:
    """(USD/hour, where it came from) from a price table file shaped like stacks/prices.json
    ({"rows": [{"id": "ec2/on-demand/<type>", "value": ..., "source": ..., "region": ...}]}).
    Read by path, not through stacks.pricing: entrypoints must not import the CDK app's packages."""
    doc = json.loads(prices_file.read_text(encoding="utf-8"))
    row_id = f"ec2/on-demand/{instance_type}"
    for row in doc.get("rows", []):
        if row.get("id") == row_id:
            value = row.get("value")
            where = f"{prices_file} row {row_id} ({row.get('region') or 'no region'}, {row.get('source', '')})"
            return (None if value is None else float(value)), where
    return None, f"{prices_file} has no row {row_id}"


def table(doc: Mapping[str, Any]) -> str:
    """The printed summary."""
    f, boot = doc["figures"], doc["boot"]
    lat = f["latency_ms"]
    cost = f["dollars_per_million_tokens"]
    rows = [
        ("stack", f"{doc['fleet_name']} ({doc['region'] or 'default region'})"),
        ("events", f"{doc['events_sent']} sent, {doc['pairs_decided']}/{doc['pairs_expected']} (event, agent) "
                   f"pairs decided" + (f", {len(doc['missing_pairs'])} missing" if doc["missing_pairs"] else "")),
        ("instances", f"{f['instances']} ({doc['instances_source']}) {doc['instance_type'] or ''}".rstrip()),
        ("decisions/s", f"{f['decisions_per_second']} ({f['decisions_per_second_per_instance']} per instance)"),
        ("tokens/s", f"{f['tokens_per_second']} ({f['tokens_per_second_per_instance']} per instance, "
                     "prompt + completion)"),
        ("latency", f"p50 {lat['p50']} ms, p99 {lat['p99']} ms (event put -> decision recorded)"),
        ("boot", f"boot-to-ready avg {boot['boot_to_ready_s']['average']} s, max {boot['boot_to_ready_s']['maximum']}"
                 f" s over {boot['boot_to_ready_s']['boots']} boots; compile cache {boot['compile_cache_hits']} hits, "
                 f"{boot['compile_cache_misses']} misses (last {boot['hours']} h)"),
        ("$/M tokens", "n/a: " + doc["price_note"] if cost is None else f"{cost} at {f['price_per_hour']} USD/h"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
