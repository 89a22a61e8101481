"""`python -m stacks.cost` (`make cost`): what this fleet costs per month and per million tokens, vs GPUs.

Reads the fleet config from cdk.json context (the same keys `cdk synth` uses, `-c KEY=VALUE`
overrides them), prices it with stacks/prices.json merged with the user's price files, prints a
table and writes cost.json and cost.png (default out/cost/). Exit status: 0 ok, 2 bad input
(unknown instance type, bad price file or config), 3 `--strict` and a figure is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from agentfleet.spec.catalog import ConfigError
from agentfleet.spec.fleet import FleetConfig
from stacks import cost_model as cm
from stacks import cost_report, cost_throughput, pricing

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m stacks.cost", description=__doc__.splitlines()[0])
    p.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE",
                   help="override a cdk.json context key, as with `cdk synth -c` (repeatable)")
    p.add_argument("--prices", action="append", default=[], metavar="FILE",
                   help="JSON price file merged over the shipped table, later files win (repeatable)")
    p.add_argument("--throughput", action="append", default=[], metavar="FILE",
                   help="measured tokens/s per instance, {\"<type>\": {\"tokens_per_second\": x, \"source\": ...}} "
                        "(the fleet check writes it); wins over the price table's throughput rows (repeatable)")
    p.add_argument("--refresh", action="store_true",
                   help="fetch On-Demand (Price List API) and Spot (price history) prices for --region "
                        "when AWS credentials exist; user price files still win")
    p.add_argument("--region", default=None, help="region to price (default: AWS_REGION, CDK_DEFAULT_REGION, "
                                                  "else us-east-1)")
    p.add_argument("--gpu", action="append", default=None, metavar="TYPE",
                   help=f"GPU baseline instance type (repeatable; default {' '.join(cm.DEFAULT_GPUS)})")
    p.add_argument("--events-per-second", type=float, help="event rate (default: sum of agents' rate limits / 60)")
    p.add_argument("--event-kb", type=float, help="average event size in KB (default 2)")
    p.add_argument("--action-fraction", type=float, help="share of events that lead to an action (default 0.5)")
    p.add_argument("--utilization", type=float, help="share of instance throughput used (default 1.0)")
    p.add_argument("--hours", type=float, default=cm.HOURS_PER_MONTH, help="hours per month (default 730)")
    p.add_argument("--out", type=Path, default=ROOT / "out" / "cost", help="output folder (default out/cost)")
    p.add_argument("--cdk-json", type=Path, default=ROOT / "cdk.json", help="where the context lives")
    p.add_argument("--strict", action="store_true", help="fail (exit 3) when any figure is missing")
    return p.parse_args(argv)


def load_context(path: Path, overrides: list[str]) -> dict[str, Any]:
    context = dict(json.loads(path.read_text()).get("context", {}))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"-c expects KEY=VALUE, got {item!r}")
        context[key.strip()] = value
    return context


def refresh(table: pricing.PriceTable, types: list[str], spot_types: list[str], region: str) -> tuple[
        pricing.PriceTable, str]:
    """Live rows over `table`; without credentials or on an API error, `table` unchanged and why."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from agentfleet.ops.aws import client
    from stacks.price_refresh import PRICING_REGION, fetch_on_demand, fetch_spot

    if boto3.session.Session().get_credentials() is None:
        return table, "refresh skipped: no AWS credentials; prices are the table's"
    try:
        rows = fetch_on_demand(client("pricing", region_name=PRICING_REGION), types, region)
        rows += fetch_spot(client("ec2", region_name=region), spot_types, region)
    except (BotoCoreError, ClientError) as exc:
        return table, f"refresh failed ({exc}); prices are the table's"
    return table.merged(rows), f"refreshed {len(rows)} price rows for {region} from AWS"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("CDK_DEFAULT_REGION") or "us-east-1"
    gpus = tuple(args.gpu or cm.DEFAULT_GPUS)
    try:
        context = load_context(args.cdk_json, args.context)
        config = FleetConfig.from_context(context.get)
        table = pricing.PriceTable.shipped()
        if args.refresh:
            types = list(dict.fromkeys([*config.instance_types, *gpus]))
            table, note = refresh(table, types, list(config.instance_types), region)
            print(note, file=sys.stderr)
        table = pricing.with_context(table, context.get("cost_prices"))
        for path in args.prices:
            table = table.merged_file(path)
        for path in args.throughput:
            table = table.merged(cost_throughput.read_measured(path))
        workload = cm.Workload.from_config(
            config, events_per_second=args.events_per_second, event_kb=args.event_kb,
            action_fraction=args.action_fraction, utilization=args.utilization)
        doc = cost_report.build(config, table, workload, region=region, gpus=gpus, hours=args.hours)
    except (ConfigError, pricing.CostInputError) as exc:  # CostInputError is a ValueError, like ConfigError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(cost_report.render_text(doc), end="")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cost.json").write_text(json.dumps(doc, indent=2) + "\n")
    cost_report.write_chart(doc, args.out / "cost.png")
    print(f"wrote {args.out / 'cost.json'} and {args.out / 'cost.png'}")
    if args.strict and doc["missing"]:
        print(f"error: --strict and figures are missing: {', '.join(doc['missing'])}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
