"""The fleet's cost model: pure arithmetic over FleetConfig, a PriceTable and workload assumptions.

Compute is priced per *scenario*. The Auto Scaling group may launch any configured type, so each
type is a scenario ("every instance is a trn2.48xlarge"), and with several types a `mix` scenario
follows the group's policy: On-Demand uses the first type (the `prioritized` On-Demand strategy
launches the highest-priority type first) and Spot is the average over all types (price-capacity-
optimized may land on any of them). A scenario with a missing price or throughput is reported as
missing, never filled in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from agentfleet.spec import compat
from agentfleet.spec.fleet import FleetConfig
from stacks import cost_throughput as ct
from stacks.pricing import PriceTable, on_demand_id, spot_id, throughput_id

HOURS_PER_MONTH = 730.0  # AWS pricing pages' convention for a month
GIB = 1024.0 * 1024.0  # KB per GB (Kinesis bills records in 1,024-byte KB)
DEFAULT_GPUS = ("p5.48xlarge", "g6e.48xlarge")


@dataclass(frozen=True)
class Workload:
    """Usage assumptions behind the service lines; each default says where it comes from."""

    # Default: the sum of the agents' rate limits (the most decisions the config allows).
    events_per_second: float
    event_kb: float = 2.0  # event envelope + payload as JSON; Kinesis rounds each record up to 1 KB
    action_fraction: float = 0.5  # share of events whose decision is an action (not "ignore")
    wru_per_event: float = 4.0  # memory item write (~2 KB) + audit decision write + its by_kind GSI copy
    rru_per_event: float = 1.0  # one memory read (<= 4 KB, strongly consistent)
    wru_per_action: float = 2.0  # outcome audit write + GSI copy
    # Configure, NeedsApproval, RouteAction, Notify, MarkSucceeded, RecordOutcome, Finished, Done
    # (constructs/actions.asl.json, the plain notify path).
    transitions_per_action: float = 8.0
    log_kb_per_event: float = 1.0  # one structured JSON log line per event
    # agentfleet.spec.metric_names: 19 metric names + per-value series (7 outcomes, 5 reasons, 7 phases, 2 markets)
    custom_metrics: int = 40
    alarms: int = 10
    dashboards: int = 1
    metric_requests_per_instance_hour: float = 60.0  # each worker flushes metrics once a minute
    s3_gb: float = 50.0  # model weights mirror (~15 GB for a 7B bf16 model) + compiled artifacts per shape
    utilization: float = 1.0  # share of instance throughput turned into tokens (1.0 = saturated batches)

    @classmethod
    def from_config(cls, config: FleetConfig, **overrides: Any) -> Workload:
        eps = sum(a.rate_limit_per_minute for a in config.agents) / 60.0
        return cls(**({"events_per_second": eps} | {k: v for k, v in overrides.items() if v is not None}))


@dataclass(frozen=True)
class Scenario:
    name: str
    od_types: tuple[str, ...]
    spot_types: tuple[str, ...]


@dataclass(frozen=True)
class Line:
    """One service component: $/month (None when a rate is missing) and how it was computed."""

    component: str
    usd_month: float | None
    basis: str
    rate_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class FleetEstimate:
    scenario: str
    level: str  # min | desired | max
    instances: float
    on_demand: float
    spot: float
    od_price: float | None
    spot_price: float | None
    compute_month: float | None
    ebs_month: float | None
    services_month: float | None
    total_month: float | None
    tokens_month: float | None
    usd_per_m_tokens: float | None
    total_hour: float | None
    missing: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class GpuBaseline:
    """The same token volume served by On-Demand GPU instances (services and root volumes included)."""

    scenario: str
    itype: str
    price: float | None
    throughput: float | None
    instances: int | None
    total_month: float | None
    usd_per_m_tokens: float | None
    ratio: float | None  # GPU total / fleet total; > 1 means the fleet is cheaper


def market_split(instances: float, base: int, pct_above: int) -> tuple[float, float]:
    """(On-Demand, Spot) for `instances`: the first `base` are On-Demand, then pct% of the rest.

    The expected split; the group itself rounds to whole instances."""
    od_base = min(instances, float(base))
    od = od_base + (instances - od_base) * pct_above / 100.0
    return od, instances - od


def scenarios(config: FleetConfig) -> list[Scenario]:
    """One scenario per type plus the `mix`. Spot is priced only for types the compatibility matrix says
    offer it (compat.has_spot is True): a type without Spot runs all its instances On-Demand."""
    types = config.instance_types
    spot = tuple(t for t in types if compat.has_spot(t)) if config.uses_spot else ()
    result = [Scenario(t, (t,), (t,) if t in spot else ()) for t in types]
    if len(types) > 1:
        result.append(Scenario("mix", (types[0],), spot))
    return result


def scenario_prices(s: Scenario, table: PriceTable, config: FleetConfig | None = None) -> dict[str, float | None]:
    """Average On-Demand/Spot price and instance throughput over the scenario's types (None if any is missing).
    With `config`, throughput is per instance from its replicas (stacks/cost_throughput.py)."""
    def tput(t: str) -> float | None:
        return table.throughput(t) if config is None else ct.instance_throughput(config, table, t)[0]

    return {
        "od_price": _mean([table.on_demand(t) for t in s.od_types]),
        # no Spot type in the scenario: Spot is 0 instances, priced 0 (the report shows "no Spot")
        "spot_price": _mean([table.spot(t) for t in s.spot_types]) if s.spot_types else 0.0,
        "od_tput": _mean([tput(t) for t in s.od_types]),
        "spot_tput": _mean([tput(t) for t in s.spot_types]) if s.spot_types else 0.0,
    }


def services(config: FleetConfig, w: Workload, table: PriceTable, instances: float,
             hours: float = HOURS_PER_MONTH) -> list[Line]:
    """Kinesis, DynamoDB, Step Functions, CloudWatch and S3 for one month of the assumed workload."""
    v = table.value
    records = w.events_per_second * 3600.0 * hours
    actions = records * w.action_fraction
    gb_in = records * math.ceil(w.event_kb) / GIB
    gb_per_hour = gb_in / hours
    lines = [_kinesis(config, w, table, records, gb_in, gb_per_hour, hours)]
    storage_gb = w.events_per_second * 86400.0 * config.memory_ttl_days * w.event_kb / GIB
    lines.append(Line(
        "DynamoDB (on-demand)",
        _sum((records * w.wru_per_event + actions * w.wru_per_action) / 1e6, v("dynamodb/on-demand/wru-million"),
             records * w.rru_per_event / 1e6, v("dynamodb/on-demand/rru-million"),
             storage_gb, v("dynamodb/storage-gb-month")),
        f"{(records * w.wru_per_event + actions * w.wru_per_action) / 1e6:,.1f} M WRU, "
        f"{records * w.rru_per_event / 1e6:,.1f} M RRU, {storage_gb:,.1f} GB kept {config.memory_ttl_days} d",
        ("dynamodb/on-demand/wru-million", "dynamodb/on-demand/rru-million", "dynamodb/storage-gb-month")))
    transitions = actions * w.transitions_per_action
    lines.append(Line("Step Functions (standard)",
                      _sum(transitions / 1000.0, v("stepfunctions/standard/transitions-thousand")),
                      f"{actions / 1e6:,.2f} M actions x {w.transitions_per_action:g} transitions",
                      ("stepfunctions/standard/transitions-thousand",)))
    requests = instances * w.metric_requests_per_instance_hour * hours
    log_gb = records * w.log_kb_per_event / GIB
    lines.append(Line(
        "CloudWatch",
        _sum(w.custom_metrics, v("cloudwatch/custom-metric-month"), w.dashboards, v("cloudwatch/dashboard-month"),
             w.alarms, v("cloudwatch/alarm-month"), log_gb, v("cloudwatch/logs-gb-ingested"),
             requests / 1000.0, v("cloudwatch/api-requests-thousand")),
        f"{w.custom_metrics} metrics, {w.dashboards} dashboard, {w.alarms} alarms, {log_gb:,.1f} GB logs",
        ("cloudwatch/custom-metric-month", "cloudwatch/dashboard-month", "cloudwatch/alarm-month",
         "cloudwatch/logs-gb-ingested", "cloudwatch/api-requests-thousand")))
    lines.append(Line("S3 (weights + compile cache)", _sum(w.s3_gb, v("s3/standard-gb-month")),
                      f"{w.s3_gb:g} GB Standard", ("s3/standard-gb-month",)))
    return lines


def _kinesis(config: FleetConfig, w: Workload, table: PriceTable, records: float, gb_in: float,
             gb_per_hour: float, hours: float) -> Line:
    v = table.value
    retention = config.kinesis_retention_hours
    long_term_gb = gb_per_hour * max(0, retention - 168)  # average GB-month kept beyond 7 days
    terms: list[float | None] = [long_term_gb, v("kinesis/long-term-gb-month")] if retention > 168 else []
    if config.kinesis_mode == "on-demand":
        extended_gb = gb_per_hour * max(0, min(retention, 168) - 24)
        if retention > 24:
            terms += [extended_gb, v("kinesis/on-demand/retention-gb-month")]
        # One reader per record: a shard is leased to one worker at a time.
        return Line("Kinesis (on-demand)",
                    _sum(hours, v("kinesis/on-demand/stream-hour"), gb_in, v("kinesis/on-demand/gb-in"),
                         gb_in, v("kinesis/on-demand/gb-out"), *terms),
                    f"1 stream, {gb_in:,.1f} GB in and out, {retention} h retention",
                    ("kinesis/on-demand/stream-hour", "kinesis/on-demand/gb-in", "kinesis/on-demand/gb-out"))
    shards = config.kinesis_shard_count
    put_units = records * math.ceil(w.event_kb / 25.0) / 1e6
    if retention > 24:
        terms += [shards * hours, v("kinesis/provisioned/retention-shard-hour")]
    return Line("Kinesis (provisioned)",
                _sum(shards * hours, v("kinesis/provisioned/shard-hour"),
                     put_units, v("kinesis/provisioned/put-units-million"), *terms),
                f"{shards} shards x {hours:g} h, {put_units:,.1f} M PUT units, {retention} h retention",
                ("kinesis/provisioned/shard-hour", "kinesis/provisioned/put-units-million"))


def fleet_estimate(config: FleetConfig, s: Scenario, table: PriceTable, w: Workload, instances: float,
                   level: str, hours: float = HOURS_PER_MONTH) -> FleetEstimate:
    p = scenario_prices(s, table, config)
    if s.spot_types:
        od, spot = market_split(instances, config.on_demand_base_capacity, config.on_demand_percentage_above_base)
    else:  # no Spot in this scenario: the group launches every instance On-Demand
        od, spot = float(instances), 0.0
    compute = _sum(od * hours, p["od_price"], spot * hours, p["spot_price"])
    ebs = _sum(instances * config.root_volume_gib, table.value("ebs/gp3-gb-month"))
    svc = _total([ln.usd_month for ln in services(config, w, table, instances, hours)])
    total = _total([compute, ebs, svc])
    tokens = _sum(od * 3600.0 * hours * w.utilization, p["od_tput"], spot * 3600.0 * hours * w.utilization,
                  p["spot_tput"])
    missing = tuple(sorted(set(_missing_ids(s, table, config))))
    return FleetEstimate(s.name, level, instances, od, spot, p["od_price"], p["spot_price"], compute, ebs, svc,
                         total, tokens, _per_m(total, tokens), None if total is None else total / hours, missing)


def gpu_baseline(fleet: FleetEstimate, gpu: str, config: FleetConfig, table: PriceTable, w: Workload,
                 hours: float = HOURS_PER_MONTH) -> GpuBaseline:
    """ceil(fleet tokens / one GPU instance's tokens) On-Demand GPU instances, plus the same services."""
    price, tput = table.on_demand(gpu), ct.instance_throughput(config, table, gpu)[0]
    if fleet.tokens_month is None or tput is None or price is None:
        return GpuBaseline(fleet.scenario, gpu, price, tput, None, None, None, None)
    count = math.ceil(fleet.tokens_month / (tput * 3600.0 * hours * w.utilization))
    total = _total([count * price * hours,
                    _sum(count * config.root_volume_gib, table.value("ebs/gp3-gb-month")),
                    _total([ln.usd_month for ln in services(config, w, table, count, hours)])])
    ratio = None if total is None or not fleet.total_month else total / fleet.total_month
    return GpuBaseline(fleet.scenario, gpu, price, tput, count, total, _per_m(total, fleet.tokens_month), ratio)


def _missing_ids(s: Scenario, table: PriceTable, config: FleetConfig) -> list[str]:
    ids = [on_demand_id(t) for t in s.od_types] + [throughput_id(t) for t in s.od_types + s.spot_types
                                                   if ct.instance_throughput(config, table, t)[0] is None]
    ids += [on_demand_id(t) for t in s.spot_types if table.rows.get(spot_id(t)) is None
            or table.rows[spot_id(t)].value is None]
    return [i for i in ids if table.rows.get(i) is None or table.rows[i].value is None]


def _mean(values: list[float | None]) -> float | None:
    return None if any(x is None for x in values) else sum(x for x in values if x is not None) / len(values)


def _sum(*pairs: float | None) -> float | None:
    """sum(quantity * rate) over (quantity, rate, quantity, rate, ...); None if any rate is None."""
    values = [x for x in pairs if x is not None]
    if len(values) != len(pairs):
        return None
    return sum(values[i] * values[i + 1] for i in range(0, len(values), 2))


def _total(values: list[float | None]) -> float | None:
    return None if any(x is None for x in values) else sum(x for x in values if x is not None)


def _per_m(total: float | None, tokens: float | None) -> float | None:
    return None if total is None or not tokens else total / (tokens / 1e6)

