"""Live price refresh: Price List and Spot history parsing on recorded responses, Spot against the emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stacks import cost
from stacks.price_refresh import fetch_on_demand, fetch_spot, parse_price_list, parse_spot_history
from stacks.pricing import CostInputError, PriceTable

DATA = Path(__file__).resolve().parent / "data"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


def test_price_list_parsing_takes_the_on_demand_hourly_price() -> None:
    page = recorded("pricing_get_products_inf2_48xlarge.json")
    assert all(isinstance(item, str) for item in page["PriceList"])  # the API sends JSON strings
    # terms.OnDemand...pricePerUnit.USD = 12.9812700000; the Reserved term (8.1783) is ignored
    assert parse_price_list(page["PriceList"]) == {"inf2.48xlarge": pytest.approx(12.98127)}


def test_price_list_with_two_prices_for_one_type_is_an_error() -> None:
    (item,) = recorded("pricing_get_products_inf2_48xlarge.json")["PriceList"]
    other = item.replace("12.9812700000", "13.5000000000")
    with pytest.raises(CostInputError, match="several On-Demand prices"):
        parse_price_list([item, other])


def test_spot_history_uses_latest_linux_price_per_az_then_averages() -> None:
    history = recorded("ec2_spot_price_history_inf2.json")["SpotPriceHistory"]
    # inf2.48xlarge latest Linux/UNIX per AZ: 1a 3.8944 (06:12 beats yesterday's 4.10), 1b 4.2056, 1c 3.60
    # (SUSE 9.99 ignored) -> (3.8944 + 4.2056 + 3.60) / 3 = 3.90
    assert parse_spot_history(history) == {"inf2.48xlarge": pytest.approx(3.9), "inf2.xlarge": pytest.approx(0.2275)}


class _Pages:
    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages, self.calls = pages, []

    def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
        self.calls.append(kwargs)
        return self.pages


class _Client:
    def __init__(self, paginator: _Pages) -> None:
        self.paginator = paginator

    def get_paginator(self, name: str) -> _Pages:
        assert name in ("get_products", "describe_spot_price_history")
        return self.paginator


def test_fetch_on_demand_filters_and_rows() -> None:
    pages = _Pages([recorded("pricing_get_products_inf2_48xlarge.json")])
    (row,) = fetch_on_demand(_Client(pages), ["inf2.48xlarge"], "us-east-1")
    assert (row.id, row.value, row.status, row.region) == ("ec2/on-demand/inf2.48xlarge", 12.98127, "live", "us-east-1")
    (call,) = pages.calls
    filters = {f["Field"]: f["Value"] for f in call["Filters"]}
    assert call["ServiceCode"] == "AmazonEC2"
    assert filters == {"instanceType": "inf2.48xlarge", "regionCode": "us-east-1", "operatingSystem": "Linux",
                       "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}


def test_live_spot_row_replaces_the_assumed_discount() -> None:
    pages = _Pages([recorded("ec2_spot_price_history_inf2.json")])
    rows = fetch_spot(_Client(pages), ["inf2.48xlarge"], "us-east-1")
    table = PriceTable.shipped()
    assert table.spot("inf2.48xlarge") == pytest.approx(12.98127 * 0.4)  # shipped: On-Demand less 60%
    assert table.merged(rows).spot("inf2.48xlarge") == pytest.approx(3.9)


@pytest.mark.integration
def test_fetch_spot_against_the_emulator(aws_env: Any) -> None:
    from agentfleet.ops.aws import client

    rows = fetch_spot(client("ec2", region_name="us-east-1"), ["inf2.48xlarge", "trn2.48xlarge"], "us-east-1")
    # The emulator offers inf2.48xlarge in us-east-1 (at a token price) but no trn2 there, like AWS.
    assert [r.id for r in rows] == ["ec2/spot/inf2.48xlarge"]
    assert rows[0].value is not None and rows[0].value > 0 and rows[0].status == "live"


def test_refresh_without_credentials_keeps_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    table = PriceTable.shipped()
    same, note = cost.refresh(table, ["inf2.48xlarge"], ["inf2.48xlarge"], "us-east-1")
    assert same is table and "no AWS credentials" in note
