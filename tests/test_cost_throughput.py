"""Replicas per instance, measured and per-replica throughput, per-agent cost and the showback price."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentfleet.spec.fleet import FleetConfig
from stacks import cost
from stacks import cost_model as cm
from stacks import cost_throughput as ct
from stacks.cost import load_context
from stacks.observability_stack import token_price
from stacks.pricing import CostInputError, PriceRow, PriceTable

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def config(**overrides: object) -> FleetConfig:
    return FleetConfig.from_context(load_context(CDK_JSON, [f"{k}={v}" for k, v in overrides.items()]).get)


def table(values: dict[str, float | None]) -> PriceTable:
    return PriceTable.shipped().merged(PriceRow(k, v, "", "", "test", "", "user") for k, v in values.items())


def measured(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "throughput.json"
    path.write_text(json.dumps(doc))
    return path


def test_replicas_are_logical_cores_over_the_familys_tp() -> None:
    cfg = config()  # tensor_parallel_degree 4
    assert ct.replicas_for(cfg, "trn2.48xlarge") == 16  # 64 logical cores at LNC=2 / 4
    assert ct.replicas_for(cfg, "trn3.48xlarge") is None  # the matrix does not know its cores
    assert ct.replicas_for(cfg, "p5.48xlarge") is None  # not a Neuron type: its row is per instance
    trn1 = config(instance_types="trn1.32xlarge", tensor_parallel_by_family="trn1=8")
    assert ct.replicas_for(trn1, "trn1.32xlarge") == 4  # 32 / 8


def test_throughput_prefers_measured_then_replicas_then_the_instance_row(tmp_path: Path) -> None:
    cfg = config(instance_types="trn2.48xlarge")
    shipped = PriceTable.shipped()
    # shipped: a whole-instance projection, never multiplied by replicas
    assert ct.instance_throughput(cfg, shipped, "trn2.48xlarge") == (3500.0, "instance row (projection; replicas not applied)")
    per_replica = table({ct.replica_id("trn2.48xlarge"): 200.0})
    value, basis = ct.instance_throughput(cfg, per_replica, "trn2.48xlarge")
    assert (value, basis) == (3200.0, "16 replicas x 200 tokens/s (user)")  # 16 * 200
    rows = ct.read_measured(measured(tmp_path, {"trn2.48xlarge": {"tokens_per_second": 9000, "source": "fleetcheck x",
                                                                  "decisions_per_second": 12}}))
    assert ct.instance_throughput(cfg, per_replica.merged(rows), "trn2.48xlarge") == (9000.0, "measured (fleetcheck x)")


def test_fleet_tokens_are_instances_times_replicas_times_per_replica_throughput() -> None:
    cfg = config(instance_types="trn2.48xlarge", desired_capacity=2)
    prices = table({ct.replica_id("trn2.48xlarge"): 200.0})
    (scenario,) = cm.scenarios(cfg)
    est = cm.fleet_estimate(cfg, scenario, prices, cm.Workload.from_config(cfg), 2, "desired")
    # 2 instances * 16 replicas * 200 tokens/s * 3,600 s * 730 h = 16,819.2 M tokens
    assert est.tokens_month == pytest.approx(2 * 16 * 200 * 3600 * 730)
    assert "throughput/trn2.48xlarge" not in est.missing


@pytest.mark.parametrize(("doc", "expected"), [
    ({"trn2.48xlarge": {"source": "x"}}, "'trn2.48xlarge' needs \"tokens_per_second\" as a positive number"),
    ({"trn2.48xlarge": {"tokens_per_second": -1}}, "'trn2.48xlarge' needs \"tokens_per_second\""),
    ({"trn2.48xlarge": {"tokens_per_second": True}}, "'trn2.48xlarge' needs \"tokens_per_second\""),
    ([], "expected {\"<instance type>\""),
])
def test_bad_throughput_file_names_the_problem(tmp_path: Path, doc: object, expected: str) -> None:
    with pytest.raises(CostInputError) as err:
        ct.read_measured(measured(tmp_path, doc))
    assert expected in str(err.value)


def test_missing_throughput_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CostInputError, match="does not exist"):
        ct.read_measured(tmp_path / "nope.json")


def test_agent_shares_split_by_rate_limit() -> None:
    shares = ct.agent_shares(config())
    # cdk.json: ci-triage 30, alarm-responder 60, security-watch 20, release-scribe 60 of 170 per minute
    assert shares == pytest.approx({"ci-triage": 30 / 170, "alarm-responder": 60 / 170,
                                    "security-watch": 20 / 170, "release-scribe": 60 / 170})


def test_cli_takes_a_measured_file_and_reports_replicas_and_agents(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = measured(tmp_path, {"trn2.48xlarge": {"tokens_per_second": 20000, "source": "fleetcheck 2026-12-01"}})
    out = tmp_path / "out"
    assert cost.main(["--throughput", str(path), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "measured (fleetcheck 2026-12-01)" in text and "Per agent" in text
    doc = json.loads((out / "cost.json").read_text())
    trn2 = next(r for r in doc["throughput"] if r["type"] == "trn2.48xlarge")
    assert (trn2["replicas"], trn2["tensor_parallel"], trn2["tokens_per_second"]) == (16, 4, 20000.0)
    desired = next(s for s in doc["scenarios"] if s["name"] == "trn2.48xlarge")["estimates"]["desired"]
    # 2 instances * 20,000 tokens/s * 3,600 * 730
    assert desired["tokens_month"] == pytest.approx(2 * 20000 * 3600 * 730)
    per_agent = [a["scenarios"]["trn2.48xlarge"]["usd_month"] for a in doc["agents"]]
    assert sum(per_agent) == pytest.approx(desired["total_month"])  # the shares split the whole bill
    assert all(a["scenarios"]["trn3.48xlarge"]["usd_month"] is None for a in doc["agents"])  # never estimated


def test_cli_bad_throughput_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(["--throughput", str(measured(tmp_path, {"trn2.48xlarge": {}})), "--out", str(tmp_path)]) == 2
    assert "tokens_per_second" in capsys.readouterr().err


def test_showback_token_price_by_hand() -> None:
    cfg = config(instance_types="inf2.48xlarge")
    prices = table({"ec2/on-demand/inf2.48xlarge": 10.0, ct.replica_id("inf2.48xlarge"): 100.0})
    per_m, basis = token_price(cfg, prices, cm.scenarios(cfg)[-1])
    # 24 logical cores / TP 4 = 6 replicas * 100 = 600 tokens/s; $10 / (600 * 3,600) * 1e6 = $4.6296 per M
    assert per_m == pytest.approx(10.0 / (600 * 3600) * 1e6)
    assert "6 replicas x 100 tokens/s" in basis


def test_showback_without_a_price_names_the_missing_row() -> None:
    cfg = config()  # trn3 first: no published price
    per_m, basis = token_price(cfg, PriceTable.shipped(), cm.scenarios(cfg)[-1])
    assert per_m is None and "`ec2/on-demand/trn3.48xlarge`" in basis and "--prices FILE" in basis
