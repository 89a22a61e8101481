"""Fleet check, part 3: the read side -- where the fleet is, its decisions, its instances, its boot metrics.

API fields relied on (botocore 1.44.8 service models, botocore/data/<service>/<version>/service-2.json):
  cloudformation DescribeStacks -> Stacks[].Outputs[].{OutputKey, OutputValue}
  ssm GetParameter -> Parameter.Value
  autoscaling DescribeAutoScalingGroups(AutoScalingGroupNames) -> AutoScalingGroups[].Instances[]
      .{InstanceType, LifecycleState ("InService" is one LifecycleState enum value)}
  cloudwatch GetMetricData(MetricDataQueries[].{Id, MetricStat{Metric, Period, Stat}}, StartTime, EndTime,
      NextToken) -> MetricDataResults[].{Id, Timestamps, Values}, NextToken; Period a multiple of 60
      for data older than 3 hours (MetricStat.Period documentation)
  dynamodb BatchGetItem(RequestItems{table: {Keys}}) -> Responses{table: [items]}, UnprocessedKeys (same
      shape as RequestItems, to resend); at most 100 keys per call
Decisions are read by the keys the runtime gives them (spec/tables.audit_key + act/dispatch.decision_id).
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from agentfleet.act.dispatch import decision_id
from agentfleet.entrypoints.fleetcheck_events import Sent
from agentfleet.ops import ddb
from agentfleet.spec import metric_names
from agentfleet.spec.catalog import ConfigError
from agentfleet.spec.settings import Settings, load_document, resolve
from agentfleet.spec.tables import AUDIT_PK, KIND_DECISION, audit_key

CONFIG_OUTPUT = "RuntimeConfigParameter"  # stacks/fleet_stack.py's CfnOutput naming the config document
Pair = tuple[str, str]  # (event id, agent)
# "as many as 100 items" per BatchGetItem (DynamoDB KeyList "max": 100, botocore 1.44.8 service model)
BATCH_GET_MAX_KEYS = 100


def fleet_stack_name(fleet_name: str) -> str:
    """stacks/fleet_app.py names the fleet's stacks "<fleet_name>-state|-fleet|-observability"."""
    return f"{fleet_name}-fleet"


def resolve_settings(cfn: Any, ssm: Any, fleet_name: str, config_file: str = "") -> tuple[Settings, str]:
    """The runtime config document the workers read (a file, or the SSM parameter the fleet stack's
    output names), parsed as the workers parse it; returns (settings, where it came from)."""
    if config_file:
        return resolve(document=load_document(config_file), env={}), config_file
    stack = fleet_stack_name(fleet_name)
    try:
        stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
    except Exception as exc:
        raise ConfigError(f"--fleet-name {fleet_name!r}: cannot describe stack {stack!r} ({exc})") from None
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for s in stacks for o in s.get("Outputs", [])}
    name = next((v for k, v in outputs.items() if k.endswith(CONFIG_OUTPUT)), "")
    if not name:
        raise ConfigError(f"stack {stack!r} has no output {CONFIG_OUTPUT} (outputs: {sorted(outputs)})")
    document = json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    return resolve(document=document, env={}), f"ssm:{name} (output of {stack})"


def iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def decision_keys(sent: Sequence[Sent], expected: set[Pair]) -> dict[str, Pair]:
    """Audit key -> (event id, agent) of every decision the run waits for. The runtime names a decision
    after its agent and stream position (act/dispatch.decision_id, the execution name that keeps an
    action from running twice), so each is fetched by key: exact, and as cheap on a busy fleet as on an
    idle one, unlike listing every decision in the window through the by_kind_bucket index."""
    agents: defaultdict[str, list[str]] = defaultdict(list)
    for event_id, agent in expected:
        agents[event_id].append(agent)
    return {audit_key(KIND_DECISION, decision_id(agent, s.shard_id, s.sequence_number)): (s.event_id, agent)
            for s in sent for agent in agents.get(s.event_id, [])}


def fetch(dynamodb: Any, table: str, keys: Sequence[str], *, sleep: Callable[[float], None] = time.sleep,
          max_rounds: int = 8) -> list[dict[str, Any]]:
    """The audit items that exist among `keys`: BatchGetItem, 100 keys a call, UnprocessedKeys resent."""
    items: list[dict[str, Any]] = []
    for start in range(0, len(keys), BATCH_GET_MAX_KEYS):
        request: dict[str, Any] = {table: {"Keys": [{AUDIT_PK: {"S": k}} for k in keys[start:start + BATCH_GET_MAX_KEYS]]}}
        for attempt in range(max_rounds):
            response = dynamodb.batch_get_item(RequestItems=request)
            items += [ddb.from_item(item) for item in response.get("Responses", {}).get(table, [])]
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
            sleep(min(2.0, 0.1 * 2 ** attempt))
        # keys still unprocessed after max_rounds count as not decided yet; the next poll asks again
    return items


def wait_for_decisions(dynamodb: Any, table: str, keys: dict[str, Pair], timeout_s: float, *,
                       poll_s: float = 2.0, clock: Callable[[], float] = time.monotonic,
                       sleep: Callable[[float], None] = time.sleep) -> dict[Pair, dict[str, Any]]:
    """Poll the audit table for the keys not found yet until all are there or `timeout_s` passes."""
    deadline = clock() + timeout_s
    found: dict[Pair, dict[str, Any]] = {}
    while True:
        pending = [k for k, pair in keys.items() if pair not in found]
        for item in fetch(dynamodb, table, pending, sleep=sleep):
            found[keys[str(item[AUDIT_PK])]] = item
        if len(found) >= len(keys) or clock() >= deadline:
            return found
        sleep(min(poll_s, max(0.0, deadline - clock())))


@dataclass(frozen=True)
class InService:
    """The group's InService instances and their types (what serves the fleet right now)."""

    count: int
    types: dict[str, int]
    note: str = ""


def in_service(autoscaling: Any, group: str) -> InService:
    if not group:
        return InService(0, {}, "the config document names no Auto Scaling group (asg_name)")
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group]).get("AutoScalingGroups", [])
    if not groups:
        return InService(0, {}, f"Auto Scaling group {group!r} not found")
    serving = [i for i in groups[0].get("Instances", []) if i.get("LifecycleState") == "InService"]
    types = Counter(str(i.get("InstanceType") or "") for i in serving)
    untyped = types.pop("", 0)  # the emulator leaves InstanceType empty in a mixed-instances group
    return InService(len(serving), dict(types), f"{untyped} InService instances report no InstanceType" if untyped else "")


_QUERIES = {  # id -> (metric, statistic)
    "boot_avg": (metric_names.BOOT_TO_READY_SECONDS, "Average"),
    "boot_max": (metric_names.BOOT_TO_READY_SECONDS, "Maximum"),
    "boot_n": (metric_names.BOOT_TO_READY_SECONDS, "SampleCount"),
    "cache_hits": (metric_names.COMPILE_CACHE_HITS, "Sum"),
    "cache_misses": (metric_names.COMPILE_CACHE_MISSES, "Sum"),
}


def boot_metrics(cloudwatch: Any, fleet_name: str, *, end: datetime, hours: int = 24,
                 period_s: int = 3600) -> dict[str, Any]:
    """Boot-to-ready (the boot emits one BootToReady value per boot) and compile-cache hits/misses
    over the last `hours`, from the metrics the runtime emits with only the Fleet dimension."""
    queries = [{"Id": qid, "ReturnData": True, "MetricStat": {
        "Metric": {"Namespace": metric_names.NAMESPACE, "MetricName": name,
                   "Dimensions": [{"Name": metric_names.FLEET, "Value": fleet_name}]},
        "Period": period_s, "Stat": stat}} for qid, (name, stat) in _QUERIES.items()]
    series: defaultdict[str, dict[Any, float]] = defaultdict(dict)
    # EndTime is exclusive (GetMetricDataInput.EndTime): end at the next whole minute so a value put in
    # the current minute counts (the emulator, too, returns nothing for it otherwise).
    end = end.replace(second=0, microsecond=0) + timedelta(minutes=1)
    kwargs: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": end - timedelta(hours=hours), "EndTime": end}
    while True:
        page = cloudwatch.get_metric_data(**kwargs)
        for result in page.get("MetricDataResults", []):
            series[result["Id"]].update(zip(result.get("Timestamps", []), result.get("Values", []), strict=True))
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    boots = sum(series["boot_n"].values())
    # Per-period averages weighted by that period's sample count give the average over the window.
    weighted = sum(avg * series["boot_n"].get(ts, 0.0) for ts, avg in series["boot_avg"].items())
    return {
        "hours": hours,
        "boot_to_ready_s": {"boots": int(boots), "average": round(weighted / boots, 1) if boots else None,
                            "maximum": round(max(series["boot_max"].values()), 1) if series["boot_max"] else None},
        "compile_cache_hits": int(sum(series["cache_hits"].values())),
        "compile_cache_misses": int(sum(series["cache_misses"].values())),
    }
