"""The price table as data, user overrides, and the error for a type nobody priced; plus the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stacks import cost
from stacks.pricing import CostInputError, PriceTable, with_context

TRN3_PRICES = {"rows": [
    {"id": "ec2/on-demand/trn3.48xlarge", "value": 40.0, "source": "quote from our account team, 2026-11"},
    {"id": "throughput/trn3.48xlarge", "value": 6000},
]}


def test_every_shipped_row_is_sourced_dated_and_marked() -> None:
    statuses = {"published", "issue-figure", "third-party", "unverified", "projection", "assumption", "not-published"}
    for row in PriceTable.shipped().rows.values():
        assert row.source and row.date and row.unit, row.id
        assert row.status in statuses, row.id
        assert (row.value is None) == (row.status == "not-published"), row.id


def test_issue_figures_are_shipped_as_given() -> None:
    table = PriceTable.shipped()
    assert table.on_demand("inf2.xlarge") == 0.7582
    assert table.on_demand("inf2.48xlarge") == 12.98127
    assert table.on_demand("p5.48xlarge") == 55.04
    assert table.rows["ec2/on-demand/trn2.48xlarge"].region == "us-east-2"
    assert table.on_demand("trn3.48xlarge") is None  # not published: a gap, not a guess


def test_unknown_instance_type_error_names_the_type_and_the_fix() -> None:
    with pytest.raises(CostInputError) as err:
        PriceTable.shipped().on_demand("trn3n.48xlarge")
    message = str(err.value)
    assert "'trn3n.48xlarge'" in message
    assert "ec2/on-demand/trn3n.48xlarge" in message
    assert "--prices FILE" in message and "cost_prices" in message


def test_user_file_overrides_and_fills_trn3(tmp_path: Path) -> None:
    path = tmp_path / "my-prices.json"
    path.write_text(json.dumps(TRN3_PRICES | {"rows": [*TRN3_PRICES["rows"],
                                                       {"id": "ec2/on-demand/trn2.48xlarge", "value": 30.0}]}))
    table = PriceTable.shipped().merged_file(path)
    assert table.on_demand("trn3.48xlarge") == 40.0
    assert table.throughput("trn3.48xlarge") == 6000.0
    row = table.rows["ec2/on-demand/trn2.48xlarge"]
    assert (row.value, row.status, row.source, row.unit) == (30.0, "user", str(path), "USD/hour")
    assert table.rows["ec2/on-demand/trn3.48xlarge"].source == "quote from our account team, 2026-11"
    assert PriceTable.shipped().on_demand("trn2.48xlarge") == 35.76  # the shipped table is untouched


def test_cdk_context_cost_prices_as_rows_or_path(tmp_path: Path) -> None:
    assert with_context(PriceTable.shipped(), TRN3_PRICES["rows"]).on_demand("trn3.48xlarge") == 40.0
    path = tmp_path / "p.json"
    path.write_text(json.dumps(TRN3_PRICES))
    assert with_context(PriceTable.shipped(), str(path)).on_demand("trn3.48xlarge") == 40.0
    assert with_context(PriceTable.shipped(), None).on_demand("trn3.48xlarge") is None
    with pytest.raises(CostInputError, match="cost_prices"):
        with_context(PriceTable.shipped(), 12)


@pytest.mark.parametrize(("content", "match"), [
    ("{not json", "not valid JSON"),
    ('{"rows": [{"id": "ec2/on-demand/trn3.48xlarge"}]}', "needs at least"),
    ('{"rows": [{"id": "ec2/on-demand/trn3.48xlarge", "value": -1}]}', "non-negative"),
    ('{"rows": [{"id": "ec2/on-demand/trn3.48xlarge", "value": "40"}]}', "non-negative number"),
    ('{"prices": []}', "expected"),
])
def test_bad_price_files_are_rejected(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(CostInputError, match=match):
        PriceTable.shipped().merged_file(path)


def test_cli_writes_table_json_and_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prices = tmp_path / "trn3.json"
    prices.write_text(json.dumps(TRN3_PRICES))
    assert cost.main(["--prices", str(prices), "--out", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    assert "$ per million tokens" in text and "GPU baseline" in text
    doc = json.loads((tmp_path / "out" / "cost.json").read_text())
    mix = next(s for s in doc["scenarios"] if s["name"] == "mix")
    assert mix["estimates"]["desired"]["total_month"] is not None  # trn3 supplied, so the mix is priced
    assert doc["missing"] == []
    assert {p["id"]: p["status"] for p in doc["prices"]}["ec2/on-demand/trn3.48xlarge"] == "user"
    assert (tmp_path / "out" / "cost.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_marks_missing_trn3_and_strict_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "MISSING" in out and "ec2/on-demand/trn3.48xlarge" in out
    assert cost.main(["--out", str(tmp_path), "--strict"]) == 3


def test_cli_unknown_type_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a type the matrix knows (so the config accepts it) but stacks/prices.json does not price
    code = cost.main(["-c", "instance_types=trn3p.48xlarge", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "'trn3p.48xlarge'" in err and "--prices FILE" in err
    assert not (tmp_path / "cost.json").exists()


def test_cli_unknown_gpu_baseline_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(["--gpu", "g5.48xlarge", "--out", str(tmp_path)]) == 2
    assert "'g5.48xlarge'" in capsys.readouterr().err


def test_cli_context_prices_then_price_files_win(tmp_path: Path) -> None:
    context_file, cli_file = tmp_path / "context.json", tmp_path / "cli.json"
    context_file.write_text(json.dumps(TRN3_PRICES))
    cli_file.write_text(json.dumps({"rows": [{"id": "ec2/on-demand/trn3.48xlarge", "value": 41.0}]}))
    out = tmp_path / "out"
    assert cost.main(["-c", f"cost_prices={context_file}", "--prices", str(cli_file), "--out", str(out)]) == 0
    doc = json.loads((out / "cost.json").read_text())
    trn3 = next(s for s in doc["scenarios"] if s["name"] == "trn3.48xlarge")["estimates"]["desired"]
    assert trn3["od_price"] == 41.0  # --prices over context
    assert trn3["tokens_month"] is not None  # throughput came from the context file
