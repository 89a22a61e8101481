"""Smoke tests for `make bench`: each benchmark runs in a tiny configuration and returns a well-formed
result. They check shape and bookkeeping, never speed (speed targets live in out/bench/results.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import __main__ as bench_main
from bench import batching, local, overhead, synth
from bench.fakes import FakeDynamoDB
from bench.results import Result

FIELDS = {"name", "value", "unit", "baseline", "ratio", "target", "notes", "details", "met", "error"}


def check_shape(result: Result, name: str, unit: str) -> None:
    assert result.name == name and result.unit == unit and result.error is None
    assert result.value is not None and result.value > 0
    if result.baseline is not None:
        assert result.ratio == pytest.approx(result.value / result.baseline, rel=0.01, abs=0.01)
        assert isinstance(result.met, bool)
    assert result.notes and all(isinstance(n, str) and n for n in result.notes)
    json.dumps(result.details)  # results.json must be able to hold it


def test_overhead_runs_every_record_through_the_pipeline() -> None:
    result = overhead.run(records=600, profile_records=300, loop_seconds=0.5)
    check_shape(result, "overhead", "records/s")
    assert result.target == "profile" and result.met is None and result.baseline is None  # the 20x target is retired
    pipeline = result.details["pipeline"]
    assert pipeline["records_fed"] == 600
    assert pipeline["decisions"] + pipeline["quarantined"] == 600
    assert pipeline["quarantined"] == 6  # one in a hundred is malformed
    assert pipeline["actions_started"] == pipeline["decisions"]  # rate limits lifted: every decision acts
    assert set(result.details["time_shares"]) == set(overhead.LABELS)
    assert result.details["loop"]["records"] > 0


def test_fake_dynamodb_keeps_the_runtime_honest() -> None:
    """The fake refuses what DynamoDB refuses: a second conditional create, and unused attribute names."""
    db = FakeDynamoDB()
    item = {"pk": {"S": "a"}, "version": {"N": "1"}}
    db.put_item(TableName="t", Item=item, ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": "pk"})
    with pytest.raises(Exception, match="ConditionalCheckFailed"):
        db.put_item(TableName="t", Item=item, ConditionExpression="attribute_not_exists(#pk)",
                    ExpressionAttributeNames={"#pk": "pk"})
    db.put_item(TableName="t", Item=item, ConditionExpression="version = :v", ExpressionAttributeValues={":v": {"N": "1"}})
    with pytest.raises(Exception, match="unused"):
        db.put_item(TableName="t", Item=item, ConditionExpression="version = :v",
                    ExpressionAttributeNames={"#pk": "pk"}, ExpressionAttributeValues={":v": {"N": "1"}})


@pytest.mark.slow
def test_batching_compares_batch_sizes_on_the_same_prompts() -> None:
    result = batching.run(prompt_count=8, rounds=1)
    check_shape(result, "batching", "tokens/s")
    for prompts in ("fleet_prompts", "short_prompts"):
        pair = result.details[prompts]
        assert pair["prompts"] == 8
        assert pair["batch1"]["tokens"] > 0 and pair["batch1"]["tokens"] == pair["batched"]["tokens"]  # same prompts
    assert result.details["batch_size"] == 8


@pytest.mark.slow
def test_synth_times_the_app_against_an_empty_app() -> None:
    result = synth.run(repeats=1, probes=False)
    check_shape(result, "synth", "s")
    assert len(result.details["app_s"]) == len(result.details["empty_s"]) == 1


@pytest.mark.slow
@pytest.mark.integration
def test_local_reads_the_fleet_summary(tmp_path: Path) -> None:
    result = local.run(workers=3, events=6, out=tmp_path / "local", timeout_s=400)
    check_shape(result, "local", "records/s")
    assert result.details["handled"] == 6
    assert result.details["lost_events"] == 0


def test_main_writes_one_object_per_benchmark_and_survives_a_failure(tmp_path: Path) -> None:
    def good(**_: object) -> Result:
        return Result("overhead", 25_000.0, "records/s", 1000.0, 25.0, ">= 20", ["fine"])

    def broken(**_: object) -> Result:
        raise RuntimeError("no emulator")

    out = tmp_path / "results.json"
    code = bench_main.main(["overhead", "local", "--quick", "--out", str(out)],
                           benchmarks={"overhead": good, "local": broken})
    assert code == 1
    written = json.loads(out.read_text())
    assert [r["name"] for r in written] == ["overhead", "local"]
    assert all(set(r) == FIELDS for r in written)
    assert written[0]["met"] is True and written[0]["ratio"] == 25.0
    assert written[1]["error"] == "RuntimeError: no emulator" and written[1]["value"] is None
    assert (tmp_path / "machine.json").exists()
