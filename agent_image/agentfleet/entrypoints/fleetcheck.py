"""`python -m agentfleet.entrypoints.fleetcheck` (`make fleetcheck`): measure a deployed fleet.

Finds the fleet (DescribeStacks of "<fleet>-fleet" -> the SSM config document the workers read, or
--config FILE), puts N synthetic CloudEvents for the configured agents on its stream, waits for their
decisions in the audit table (fetched by the keys the runtime gives them), then reports decisions/s,
tokens/s per instance (prompt + completion of the run's decisions over the window / InService instances
of the Auto Scaling group), p50/p99 latency (event put -> decision recorded), boot-to-ready and
compile-cache hits/misses (CloudWatch, last day) and $/M tokens at the instance's hourly price. Writes
OUT/report.json and OUT/throughput.json (the file `make cost ARGS="--throughput FILE"` reads). Read-only
except the events it sends; the agents decide them as any event (the synthetic events say so, and the
agents' actions and guardrails apply).
--endpoint-url points every client at the local emulator (the local fleet runs the same code).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from agentfleet.entrypoints import fleetcheck_aws as aws
from agentfleet.entrypoints import fleetcheck_events as events
from agentfleet.entrypoints import fleetcheck_figures as figures
from agentfleet.ops import logs
from agentfleet.ops.aws import client
from agentfleet.spec.catalog import ConfigError

# The repository's price table, found by path when this runs from a checkout (the container does not
# ship stacks/; --prices or --price-per-hour then supply the price).
SHIPPED_PRICES = Path(__file__).resolve().parents[3] / "stacks" / "prices.json"


@dataclass(frozen=True)
class Options:
    events: int = 50
    timeout_s: float = 600.0
    endpoint_url: str = ""
    region: str = ""
    fleet_name: str = "agentfleet"
    config: str = ""
    subjects: int = 8
    instances: int = 0  # 0: InService instances of the fleet's Auto Scaling group
    instance_type: str = ""  # "": the InService instances' type
    price_per_hour: float | None = None
    prices: Path = SHIPPED_PRICES
    out: Path = Path("out/fleetcheck")
    metrics_hours: int = 24


def _client(service: str, opts: Options) -> Any:
    overrides = {k: v for k, v in (("endpoint_url", opts.endpoint_url), ("region_name", opts.region)) if v}
    return client(service, **overrides)


def _price(opts: Options, instance_type: str) -> tuple[float | None, str]:
    if opts.price_per_hour is not None:
        return opts.price_per_hour, "--price-per-hour"
    if not instance_type:
        return None, "no single instance type is in service: pass --instance-type or --price-per-hour"
    if not opts.prices.exists():
        return None, f"no price table at {opts.prices}: pass --prices FILE or --price-per-hour"
    price, where = figures.read_hourly_price(opts.prices, instance_type)
    return price, where if price is not None else f"no published price ({where}): pass --price-per-hour"


def run(opts: Options) -> dict[str, Any]:
    """One fleet check; returns the report (also written to opts.out)."""
    settings, config_source = aws.resolve_settings(_client("cloudformation", opts), _client("ssm", opts),
                                                   opts.fleet_name, opts.config)
    run_id = uuid.uuid4().hex[:12]
    batch = events.synthetic_events(settings.agents, opts.events, run_id, subjects=opts.subjects)
    expected = events.expected_pairs(settings.agents, batch)
    kinesis = _client("kinesis", opts)
    started = time.time()
    sent = events.put_events(kinesis, settings.stream_name, batch)
    keys = aws.decision_keys(sent, expected)
    found = aws.wait_for_decisions(_client("dynamodb", opts), settings.audit_table, keys, opts.timeout_s)
    decisions = list(found.values())
    group = aws.in_service(_client("autoscaling", opts), settings.asg_name)
    instances = opts.instances or group.count
    instance_type = opts.instance_type or (next(iter(group.types)) if len(group.types) == 1 else "")
    price, price_note = _price(opts, instance_type)
    measured = figures.measure({s.event_id: s.put_at for s in sent}, decisions, instances)
    numbers = figures.report(measured, price_per_hour=price,
                             outcomes=Counter(str(d.get("outcome")) for d in decisions))
    boot = aws.boot_metrics(_client("cloudwatch", opts), settings.fleet_name, end=datetime.now(UTC),
                            hours=opts.metrics_hours)
    stack, region = aws.fleet_stack_name(opts.fleet_name), kinesis.meta.region_name
    missing = sorted(f"{e} {a}" for e, a in expected - set(found))
    doc: dict[str, Any] = {
        "fleet_name": settings.fleet_name, "stack": stack, "region": region, "config": config_source,
        "run_id": run_id, "started_at": aws.iso(started), "events_sent": len(sent),
        "pairs_expected": len(expected), "pairs_decided": len(found), "missing_pairs": missing[:50],
        "instances_source": "--instances" if opts.instances else "Auto Scaling InService",
        "auto_scaling": {"group": settings.asg_name, "in_service": group.count, "types": group.types,
                         "note": group.note},
        "instance_type": instance_type, "price_note": price_note,
        "figures": numbers, "boot": boot,
        "first_put_at": aws.iso(min(s.put_at for s in sent)) if sent else "",
        "last_decision_at": max((str(d["at"]) for d in decisions), default=""),
    }
    opts.out.mkdir(parents=True, exist_ok=True)
    doc["throughput_file"] = _write_throughput(opts, doc, stack, region)
    (opts.out / "report.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return doc


def _write_throughput(opts: Options, doc: dict[str, Any], stack: str, region: str) -> str:
    """OUT/throughput.json, only from a complete run on one known instance type; else why not."""
    numbers = doc["figures"]
    if doc["missing_pairs"]:
        return f"not written: {doc['pairs_expected'] - doc['pairs_decided']} pairs were not decided in time"
    if not doc["instance_type"] or numbers["instances"] < 1 or numbers["tokens_per_second_per_instance"] <= 0:
        return "not written: no single instance type in service, no instances, or no tokens measured"
    source = (f"fleetcheck {doc['started_at'][:10]} {stack} ({region}), {doc['events_sent']} events, "
              f"{numbers['instances']} instances")
    path = opts.out / "throughput.json"
    body = figures.throughput_file(doc["instance_type"], numbers, source)
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return str(path)


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(prog="python -m agentfleet.entrypoints.fleetcheck", description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=50, help="synthetic events to send (default 50)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the decisions (default 600)")
    p.add_argument("--endpoint-url", default="", help="AWS endpoint for every client (the local emulator)")
    p.add_argument("--region", default="", help="AWS region (default: the SDK's, AWS_REGION)")
    p.add_argument("--fleet-name", "--stack-prefix", dest="fleet_name", default="agentfleet",
                   help="cdk context fleet_name = the stacks' name prefix (default agentfleet)")
    p.add_argument("--config", default="", help="the runtime config document (file) instead of the stack's SSM one")
    p.add_argument("--subjects", type=int, default=8, help="spread the events over this many subjects (default 8)")
    p.add_argument("--instances", type=int, default=0, help="divide by this many instances instead of the group's "
                                                            "InService count (the local fleet's worker processes)")
    p.add_argument("--instance-type", default="", help="the instance type to report and price (default: in service)")
    p.add_argument("--price-per-hour", type=float, default=None, help="USD per instance hour (default: --prices row)")
    p.add_argument("--prices", type=Path, default=SHIPPED_PRICES, help=f"price table (default {SHIPPED_PRICES})")
    p.add_argument("--out", type=Path, default=Path("out/fleetcheck"), help="output folder (default out/fleetcheck)")
    p.add_argument("--metrics-hours", type=int, default=24, help="boot metrics over the last hours (default 24)")
    a = p.parse_args(argv)
    for flag, value, low in (("--events", a.events, 1), ("--subjects", a.subjects, 1), ("--instances", a.instances, 0),
                             ("--metrics-hours", a.metrics_hours, 1)):
        if value < low:
            p.error(f"{flag} must be at least {low}, got {value}")
    if a.timeout <= 0 or (a.price_per_hour is not None and a.price_per_hour <= 0):
        p.error("--timeout and --price-per-hour must be positive")
    return Options(events=a.events, timeout_s=a.timeout, endpoint_url=a.endpoint_url, region=a.region,
                   fleet_name=a.fleet_name, config=a.config, subjects=a.subjects, instances=a.instances,
                   instance_type=a.instance_type, price_per_hour=a.price_per_hour, prices=a.prices, out=a.out,
                   metrics_hours=a.metrics_hours)


def main(argv: list[str] | None = None) -> int:
    """0 when every (event, agent) pair was decided in time, 1 when some were not, 2 on bad configuration
    or a failed AWS call."""
    logs.configure("WARNING")
    opts = parse_args(argv)
    try:
        doc = run(opts)
    except ConfigError as exc:
        sys.stderr.write(f"fleet check: {exc}\n")
        return 2
    except (BotoCoreError, ClientError) as exc:  # no credentials, access denied, no such stream or table
        sys.stderr.write(f"fleet check: an AWS call failed: {exc}\n")
        return 2
    sys.stdout.write(figures.table(doc) + f"\nwrote {opts.out / 'report.json'}; throughput: {doc['throughput_file']}\n")
    return 1 if doc["missing_pairs"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
