"""The price table: shipped rows (stacks/prices.json) merged with user rows, looked up by id.

A row id names what is priced: `ec2/on-demand/<type>`, `ec2/spot/<type>`, `throughput/<type>`,
`kinesis/...`, `dynamodb/...`. A row whose value is null is a known gap (Trn3 has no public
price); a type with no row at all is a typo or a new type, so looking it up is an error whose
message says how to supply the figure. Nothing here invents a number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

SHIPPED = Path(__file__).with_name("prices.json")
HOW_TO_SUPPLY = (
    "add a row {{\"id\": \"{id}\", \"value\": <number>, \"source\": \"<where it comes from>\"}} to a JSON file "
    "({{\"rows\": [...]}}) and pass it with `python -m stacks.cost --prices FILE` "
    "(`make cost ARGS=\"--prices FILE\"`), or set cdk context `cost_prices` to that file's path "
    "(`-c cost_prices=FILE`) so synth and the dashboard widget use it too"
)


class CostInputError(ValueError):
    """A price, throughput or price file is missing or malformed; the message says how to fix it."""


@dataclass(frozen=True)
class PriceRow:
    id: str
    value: float | None
    unit: str
    region: str
    source: str
    date: str
    status: str
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        row = {"id": self.id, "value": self.value, "unit": self.unit, "region": self.region,
               "source": self.source, "date": self.date, "status": self.status}
        return row | ({"note": self.note} if self.note else {})


def on_demand_id(itype: str) -> str:
    return f"ec2/on-demand/{itype}"


def spot_id(itype: str) -> str:
    return f"ec2/spot/{itype}"


def throughput_id(itype: str) -> str:
    return f"throughput/{itype}"


class PriceTable:
    """Rows by id. `merged` returns a new table; the shipped file is never modified."""

    def __init__(self, rows: Iterable[PriceRow]) -> None:
        self.rows: dict[str, PriceRow] = {r.id: r for r in rows}

    @classmethod
    def shipped(cls) -> PriceTable:
        return cls(_parse_rows(_read_json(SHIPPED), origin=str(SHIPPED), base=None))

    def merged(self, overrides: Iterable[PriceRow]) -> PriceTable:
        return PriceTable([*self.rows.values(), *overrides])

    def merged_file(self, path: str | Path) -> PriceTable:
        """Merge a user price file; rows may give only id and value (the rest defaults to the shipped row)."""
        return self.merged(_parse_rows(_read_json(Path(path)), origin=str(path), base=self))

    def value(self, row_id: str) -> float | None:
        """The row's value, None when the row exists with no published figure; error when no row exists."""
        row = self.rows.get(row_id)
        if row is None:
            raise CostInputError(f"no price row {row_id!r}: {HOW_TO_SUPPLY.format(id=row_id)}")
        return row.value

    def on_demand(self, itype: str) -> float | None:
        row_id = on_demand_id(itype)
        if row_id not in self.rows:
            raise CostInputError(
                f"instance type {itype!r} has no On-Demand price in the price table (no row {row_id!r}); "
                + HOW_TO_SUPPLY.format(id=row_id))
        return self.rows[row_id].value

    def spot(self, itype: str) -> float | None:
        """Observed/user Spot price if there is one, else On-Demand less the assumed Spot discount."""
        row = self.rows.get(spot_id(itype))
        if row is not None and row.value is not None:
            return row.value
        od = self.on_demand(itype)
        discount = self.value("ec2/spot-discount")
        return None if od is None or discount is None else od * (1.0 - discount)

    def throughput(self, itype: str) -> float | None:
        """Tokens/s per instance; None (not an error) when unknown, so cost still prints without $/M tokens."""
        row = self.rows.get(throughput_id(itype))
        return None if row is None else row.value

    def used(self, ids: Iterable[str]) -> list[PriceRow]:
        return [self.rows[i] for i in dict.fromkeys(ids) if i in self.rows]


def with_context(table: PriceTable, value: Any) -> PriceTable:
    """`table` merged with cdk context `cost_prices`: unset, a price file path, or a list of rows."""
    if value in (None, ""):
        return table
    if isinstance(value, str):
        return table.merged_file(value)
    if isinstance(value, list):
        return table.merged(_parse_rows({"rows": value}, origin="cdk context cost_prices", base=table))
    raise CostInputError(f"cdk context cost_prices must be a price file path or a list of rows, got {value!r}")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CostInputError(f"price file {str(path)!r} does not exist") from None
    except json.JSONDecodeError as exc:
        raise CostInputError(f"price file {str(path)!r} is not valid JSON: {exc}") from None


def _parse_rows(doc: Any, *, origin: str, base: PriceTable | None) -> list[PriceRow]:
    raw = doc.get("rows") if isinstance(doc, dict) else doc
    if not isinstance(raw, list):
        raise CostInputError(f"{origin}: expected {{\"rows\": [...]}} or a list of rows")
    rows = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or "value" not in item:
            raise CostInputError(f"{origin}: row {i} needs at least \"id\" (string) and \"value\" (number or null)")
        value = item["value"]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise CostInputError(f"{origin}: row {item['id']!r} value must be a non-negative number or null")
        shipped = base.rows.get(item["id"]) if base else None
        defaults = shipped or PriceRow(item["id"], None, "", "", "", "", "")
        rows.append(replace(
            defaults,
            value=None if value is None else float(value),
            unit=item.get("unit", defaults.unit),
            region=item.get("region", "" if base else defaults.region),
            source=item.get("source", origin if base else defaults.source),
            date=item.get("date", "" if base else defaults.date),
            status=item.get("status", "user" if base else defaults.status),
            note=item.get("note", "" if base else defaults.note),
        ))
    return rows
