"""Cost model arithmetic, each case checked by hand in its comment."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from agentfleet.spec.fleet import FleetConfig
from stacks import cost_model as cm
from stacks.cost import load_context
from stacks.pricing import PriceRow, PriceTable

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"
SERVICE_RATES = [rid for rid in PriceTable.shipped().rows if not rid.startswith(("ec2/", "throughput/", "ebs/"))]


def config(**overrides: object) -> FleetConfig:
    context = load_context(CDK_JSON, [f"{k}={v}" for k, v in overrides.items()])
    return FleetConfig.from_context(context.get)


def table(values: dict[str, float | None]) -> PriceTable:
    return PriceTable.shipped().merged(PriceRow(k, v, "", "", "test", "", "user") for k, v in values.items())


@pytest.mark.parametrize(("instances", "base", "pct", "expected"), [
    (2, 1, 25, (1.25, 0.75)),  # 1 base + 25% of the 1 above it
    (4, 1, 50, (2.5, 1.5)),  # 1 + 50% of 3
    (0.5, 1, 25, (0.5, 0.0)),  # below the base everything is On-Demand
    (5, 2, 0, (2.0, 3.0)),  # 0% above base: the rest is Spot
    (10, 0, 100, (10.0, 0.0)),  # 100%: no Spot at all
])
def test_market_split(instances: float, base: int, pct: int, expected: tuple[float, float]) -> None:
    assert cm.market_split(instances, base, pct) == pytest.approx(expected)


# Round numbers so the whole estimate can be checked by hand; services priced at 0 to isolate compute.
ROUND = {"ec2/on-demand/inf2.48xlarge": 10.0, "ec2/spot-discount": 0.5, "throughput/inf2.48xlarge": 1000.0,
         "ebs/gp3-gb-month": 0.1, "ec2/on-demand/p5.48xlarge": 50.0, "throughput/p5.48xlarge": 4000.0,
         **{rid: 0.0 for rid in SERVICE_RATES}}


def test_fleet_estimate_by_hand() -> None:
    cfg = config(instance_types="inf2.48xlarge", min_capacity=1, desired_capacity=4, max_capacity=4,
                 on_demand_base_capacity=1, on_demand_percentage_above_base=50, root_volume_gib=100)
    prices = table(ROUND)
    (scenario,) = cm.scenarios(cfg)
    w = cm.Workload.from_config(cfg)
    est = cm.fleet_estimate(cfg, scenario, prices, w, 4, "desired")
    # split 4 -> 2.5 On-Demand + 1.5 Spot; Spot = 10 * (1 - 0.5) = 5 $/h
    assert (est.on_demand, est.spot, est.spot_price) == pytest.approx((2.5, 1.5, 5.0))
    # compute = 2.5*730*10 + 1.5*730*5 = 18,250 + 5,475 = 23,725
    assert est.compute_month == pytest.approx(23_725.0)
    # root volumes = 4 instances * 100 GB * 0.1 = 40; total = 23,765; per hour 23,765 / 730 = 32.5548
    assert est.ebs_month == pytest.approx(40.0)
    assert est.total_month == pytest.approx(23_765.0)
    assert est.total_hour == pytest.approx(32.5548, abs=1e-4)
    # tokens = 4 * 1,000 tok/s * 3,600 * 730 = 10,512 M; $/M = 23,765 / 10,512 = 2.26075
    assert est.tokens_month == pytest.approx(10_512e6)
    assert est.usd_per_m_tokens == pytest.approx(2.26075, abs=1e-5)
    # p5 serves 4,000 * 3,600 * 730 = 10,512 M tokens a month: exactly 1 instance.
    # 1 * 50 * 730 = 36,500 + its 100 GB root volume 10 = 36,510; ratio 36,510 / 23,765 = 1.53629
    gpu = cm.gpu_baseline(est, "p5.48xlarge", cfg, prices, w)
    assert gpu.instances == 1
    assert gpu.total_month == pytest.approx(36_510.0)
    assert gpu.ratio == pytest.approx(1.53629, abs=1e-5)
    assert gpu.usd_per_m_tokens == pytest.approx(36_510 / 10_512)
    # One token/s less per GPU and one instance no longer suffices: ceil -> 2
    slower = cm.gpu_baseline(est, "p5.48xlarge", cfg, table({**ROUND, "throughput/p5.48xlarge": 3999.0}), w)
    assert slower.instances == 2


def test_mix_prices_on_demand_from_first_type_and_spot_from_the_spot_types() -> None:
    cfg = config(instance_types="inf2.48xlarge,trn1.32xlarge,trn3.48xlarge", on_demand_percentage_above_base="50")
    prices = table({"ec2/on-demand/inf2.48xlarge": 10.0, "ec2/on-demand/trn1.32xlarge": 6.0,
                    "ec2/spot/trn1.32xlarge": 1.0, "ec2/spot-discount": 0.5})
    mix = cm.scenarios(cfg)[-1]
    # trn3 has no Spot per the compatibility matrix (unknown): it is never priced as Spot
    assert (mix.name, mix.od_types, mix.spot_types) == ("mix", ("inf2.48xlarge",), ("inf2.48xlarge", "trn1.32xlarge"))
    p = cm.scenario_prices(mix, prices)
    # On-Demand: prioritized strategy launches the first type = 10; Spot: mean(10 * 0.5, observed 1.0) = 3
    assert p["od_price"] == pytest.approx(10.0)
    assert p["spot_price"] == pytest.approx(3.0)


def test_missing_trn3_price_is_reported_not_estimated() -> None:
    cfg = config()  # cdk.json default: trn3.48xlarge first, trn2.48xlarge second
    w = cm.Workload.from_config(cfg)
    by_name = {s.name: cm.fleet_estimate(cfg, s, PriceTable.shipped(), w, 2, "desired") for s in cm.scenarios(cfg)}
    assert by_name["trn3.48xlarge"].total_month is None
    assert by_name["mix"].total_month is None  # the mix includes trn3, so it is missing too
    assert "ec2/on-demand/trn3.48xlarge" in by_name["mix"].missing
    assert by_name["trn2.48xlarge"].total_month is not None


def test_default_event_rate_is_the_agents_rate_limits() -> None:
    cfg = config()
    # cdk.json agents: 30 + 60 + 20 + 60 = 170 per minute = 2.8333 per second
    assert cm.Workload.from_config(cfg).events_per_second == pytest.approx(170 / 60)
    assert cm.Workload.from_config(cfg, events_per_second=5.0).events_per_second == 5.0


def _line(lines: list[cm.Line], prefix: str) -> cm.Line:
    return next(ln for ln in lines if ln.component.startswith(prefix))


def test_kinesis_on_demand_vs_provisioned_by_hand() -> None:
    w = cm.Workload(events_per_second=10.0, event_kb=2.5)
    prices = PriceTable.shipped()
    # records = 10 * 3,600 * 730 = 26.28 M, each billed as 3 KB -> 78.84e6 KB / 1,048,576 = 75.187683 GB
    on_demand = _line(cm.services(config(kinesis_mode="on-demand"), w, prices, 2), "Kinesis")
    # 730 h * 0.04 + 75.187683 GB * 0.08 in + 75.187683 GB * 0.04 out = 29.2 + 6.015015 + 3.007507 = 38.222522
    assert on_demand.usd_month == pytest.approx(38.222522, abs=1e-5)
    # 4 shards * 730 h * 0.015 = 43.8; one 25 KB PUT unit per record: 26.28 M * 0.014 = 0.36792 -> 44.16792
    provisioned = _line(cm.services(config(kinesis_mode="provisioned", kinesis_shard_count=4), w, prices, 2),
                        "Kinesis")
    assert provisioned.usd_month == pytest.approx(44.16792, abs=1e-5)
    # 48 h retention: on-demand keeps 24 h more of 75.187683 / 730 GB/h = 2.471924 GB * 0.10 = 0.247192
    longer = _line(cm.services(config(kinesis_retention_hours=48), w, prices, 2), "Kinesis")
    assert longer.usd_month == pytest.approx(38.222522 + 0.247192, abs=1e-5)
    # provisioned extended retention: 4 shards * 730 h * 0.02 = 58.4 more
    longer_p = _line(cm.services(config(kinesis_mode="provisioned", kinesis_shard_count=4, kinesis_retention_hours=48),
                                 w, prices, 2), "Kinesis")
    assert longer_p.usd_month == pytest.approx(44.16792 + 58.4, abs=1e-5)


def test_step_functions_and_dynamodb_by_hand() -> None:
    w = cm.Workload(events_per_second=10.0)
    lines = cm.services(config(memory_ttl_days=14), w, PriceTable.shipped(), 2)
    # actions = 26.28 M * 0.5 = 13.14 M; * 9 transitions = 118.26 M; / 1,000 * 0.025 = 2,956.50
    assert _line(lines, "Step Functions").usd_month == pytest.approx(2956.5)
    # WRU = 26.28 M * 4 + 13.14 M * 2 = 131.4 M * 0.625 = 82.125; RRU = 26.28 M * 0.125 = 3.285;
    # storage = 10/s * 86,400 * 14 d * 2 KB / 1,048,576 = 23.0713 GB * 0.25 = 5.76782 -> 91.17782
    assert _line(lines, "DynamoDB").usd_month == pytest.approx(91.17782, abs=1e-4)


def test_a_null_service_rate_makes_the_total_missing() -> None:
    cfg = config(instance_types="inf2.48xlarge")
    prices = table({"stepfunctions/standard/transitions-thousand": None})
    est = cm.fleet_estimate(cfg, cm.scenarios(cfg)[0], prices, cm.Workload.from_config(cfg), 2, "desired")
    assert est.compute_month is not None
    assert est.services_month is None and est.total_month is None
    assert not math.isnan(est.compute_month)


def test_on_demand_only_config_prices_no_spot() -> None:
    cfg = config()  # cdk.json: trn3 + trn2, on_demand_percentage_above_base 100
    w = cm.Workload.from_config(cfg)
    for s in cm.scenarios(cfg):
        assert s.spot_types == ()
        est = cm.fleet_estimate(cfg, s, PriceTable.shipped(), w, 2, "desired")
        assert (est.on_demand, est.spot) == (2.0, 0.0)
