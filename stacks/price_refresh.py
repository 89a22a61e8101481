"""Live prices: the AWS Price List API (On-Demand) and Spot price history, as PriceRows.

Parsing is separate from calling so tests run on recorded responses. Clients are injected
(`agentfleet.ops.aws.client` in the CLI), so the emulator or a stub can stand in for AWS.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from stacks.pricing import CostInputError, PriceRow, on_demand_id, spot_id

# The Price List API is served from a few regions only; us-east-1 answers for every region.
PRICING_REGION = "us-east-1"
PRICE_LIST_SOURCE = "AWS Price List API (pricing.get_products, AmazonEC2)"
SPOT_SOURCE = "EC2 Spot price history (ec2.describe_spot_price_history), mean of the latest price per AZ"


def product_filters(itype: str, region: str) -> list[dict[str, str]]:
    """The one Linux, shared-tenancy, no-preinstalled-software, in-use On-Demand SKU for a type."""
    terms = {"instanceType": itype, "regionCode": region, "operatingSystem": "Linux", "tenancy": "Shared",
             "preInstalledSw": "NA", "capacitystatus": "Used"}
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in terms.items()]


def parse_price_list(price_list: Iterable[str | dict[str, Any]]) -> dict[str, float]:
    """{instance type: USD/hour} from get_products' PriceList (a list of JSON strings).

    Path: terms.OnDemand.<offer>.priceDimensions.<rate>.pricePerUnit.USD with unit "Hrs". A type
    that yields different non-zero prices is ambiguous (the filters were too loose): an error."""
    found: dict[str, set[float]] = {}
    for item in price_list:
        doc = json.loads(item) if isinstance(item, str) else item
        attrs = doc.get("product", {}).get("attributes", {})
        itype = attrs.get("instanceType")
        if not itype or attrs.get("licenseModel", "No License required") != "No License required":
            continue
        for offer in doc.get("terms", {}).get("OnDemand", {}).values():
            for dim in offer.get("priceDimensions", {}).values():
                usd = float(dim.get("pricePerUnit", {}).get("USD", "0"))
                if dim.get("unit") == "Hrs" and usd > 0:
                    found.setdefault(itype, set()).add(usd)
    ambiguous = {t: sorted(p) for t, p in found.items() if len(p) > 1}
    if ambiguous:
        raise CostInputError(f"Price List returned several On-Demand prices per type: {ambiguous}")
    return {t: p.pop() for t, p in found.items()}


def parse_spot_history(history: Iterable[dict[str, Any]]) -> dict[str, float]:
    """{instance type: USD/hour}: the latest Linux price in each AZ, averaged over AZs.

    price-capacity-optimized may place Spot capacity in any AZ of the group, so no single AZ's
    price stands for the fleet."""
    latest: dict[tuple[str, str], tuple[datetime, float]] = {}
    for entry in history:
        if not str(entry.get("ProductDescription", "")).startswith("Linux/UNIX"):
            continue
        key = (entry["InstanceType"], entry["AvailabilityZone"])
        stamp = _timestamp(entry["Timestamp"])
        if key not in latest or stamp > latest[key][0]:
            latest[key] = (stamp, float(entry["SpotPrice"]))
    by_type: dict[str, list[float]] = {}
    for (itype, _az), (_stamp, price) in latest.items():
        by_type.setdefault(itype, []).append(price)
    return {t: sum(p) / len(p) for t, p in by_type.items()}


def fetch_on_demand(pricing: Any, types: Iterable[str], region: str) -> list[PriceRow]:
    rows = []
    for itype in types:
        pages = pricing.get_paginator("get_products").paginate(
            ServiceCode="AmazonEC2", Filters=product_filters(itype, region))
        prices = parse_price_list(item for page in pages for item in page.get("PriceList", []))
        if itype in prices:
            rows.append(_row(on_demand_id(itype), prices[itype], region, PRICE_LIST_SOURCE))
    return rows


def fetch_spot(ec2: Any, types: Iterable[str], region: str) -> list[PriceRow]:
    types = list(types)
    if not types:
        return []
    # StartTime=now returns the price in effect now for each AZ (the history's latest point).
    pages = ec2.get_paginator("describe_spot_price_history").paginate(
        InstanceTypes=types, ProductDescriptions=["Linux/UNIX"], StartTime=datetime.now(UTC))
    prices = parse_spot_history(e for page in pages for e in page.get("SpotPriceHistory", []))
    return [_row(spot_id(t), prices[t], region, SPOT_SOURCE) for t in types if t in prices]


def _row(row_id: str, value: float, region: str, source: str) -> PriceRow:
    return PriceRow(row_id, value, "USD/hour", region, source, date.today().isoformat(), "live")


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).replace("Z", "+00:00")
    if "." in text:  # the API sends up to nanoseconds; datetime takes microseconds
        head, _, tail = text.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        text = f"{head}.{digits[:6]}{tail[len(digits):]}"
    return datetime.fromisoformat(text)
