"""Dashboard widgets for continuous inference (in-flight vs slots, replicas, prefix cache, queue vs model
time, shedding, target deliveries) and the per-agent showback (tokens and estimated dollars per agent).

Metric names and dimensions come from agentfleet.spec.metric_names, the module the workers emit with.
Agents are known at synth, so per-agent series are explicit metrics (one per agent, no search cost);
replicas (their count depends on the instance type) and targets (named by the actions config) use
CloudWatch SEARCH expressions over the exact dimension set the runtime emits.
Metric math and SEARCH syntax: docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/using-metric-math.html
and .../using-search-expressions.html ({Namespace,Dim1,Dim2} schema, then SEARCH(expr, stat, period)).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw

from agentfleet.spec import metric_names as m

_1MIN, _5MIN, _1H = Duration.minutes(1), Duration.minutes(5), Duration.hours(1)


class MetricFactory(Protocol):
    """Observability.metric: a runtime metric of this fleet (Fleet dimension added)."""

    def __call__(self, name: str, extra: dict[str, str] | None = None, *, statistic: str = "Sum",
                 label: str | None = None, period: Duration = _5MIN) -> cw.Metric: ...


def search(fleet: str, name: str, dimensions: Sequence[str], statistic: str,
           period: Duration = _5MIN) -> cw.SearchExpression:
    """Every series of `name` with exactly {Fleet, *dimensions} for this fleet, one line per value, each
    labelled with its dimension values (dynamic label ${PROP('Dim.<name>')}, applied to every series a
    search returns: docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/graph-dynamic-labels.html)."""
    schema = ",".join([m.NAMESPACE, m.FLEET, *sorted(dimensions)])
    expression = (f"SEARCH('{{{schema}}} MetricName=\"{name}\" {m.FLEET}=\"{fleet}\"', "
                  f"'{statistic}', {int(period.to_seconds())})")
    label = " ".join(f"${{PROP('Dim.{d}')}}" for d in dimensions)
    return cw.SearchExpression(expression=expression, label=label, period=period)


def inference_widgets(metric: MetricFactory, fleet: str, agents: Sequence[str]) -> list[cw.IWidget]:
    """The "Inference" section: is every slot busy, where does an item's time go, what is shed or delivered."""
    slots = [metric(m.IN_FLIGHT_REQUESTS, label="In flight (sum over workers)", period=_1MIN),
             metric(m.MODEL_SLOTS, label="Slots (replicas x max_num_seqs)", period=_1MIN)]
    times = [metric(name, statistic=p, label=f"{label} {p}")
             for name, label in ((m.QUEUE_TIME_MS, "queue"), (m.MODEL_TIME_MS, "model")) for p in ("p50", "p99")]
    return [
        _graph("In-flight requests vs slots", slots, "requests"),
        _graph("Replica utilization % (busy slots / slots)", [search(
            fleet, m.REPLICA_UTILIZATION, [m.REPLICA], "Average")], "%"),
        _graph("Prefix-cache hit rate % per replica", [search(
            fleet, m.PREFIX_CACHE_HIT_RATE, [m.REPLICA], "Average")], "%"),
        _graph("Queue time vs model time (ms)", times, "ms"),
        _graph("Items shed per agent (older than shed_after_seconds)",
               [metric(m.ITEMS_SHED, {m.AGENT: a}, label=a) for a in agents], "items"),
        _graph("Target deliveries by target and outcome", [search(
            fleet, m.TARGET_DELIVERIES, [m.TARGET, m.OUTCOME], "Sum")], "deliveries"),
    ]


def agent_tokens(metric: MetricFactory, agents: Sequence[str]) -> list[cw.MathExpression]:
    """Prompt + completion tokens per agent and hour. FILL(..., 0): an hour with completions but no
    prompt datapoint (or the reverse) still adds up."""
    out = []
    for i, agent in enumerate(agents):
        using = {f"p{i}": metric(m.AGENT_PROMPT_TOKENS, {m.AGENT: agent}, period=_1H),
                 f"c{i}": metric(m.AGENT_COMPLETION_TOKENS, {m.AGENT: agent}, period=_1H)}
        out.append(cw.MathExpression(expression=f"FILL(p{i}, 0) + FILL(c{i}, 0)", using_metrics=using,
                                     label=agent, period=_1H))
    return out


def showback_widgets(metric: MetricFactory, agents: Sequence[str], usd_per_million_tokens: float | None,
                     basis: str) -> list[cw.IWidget]:
    """Tokens per agent and, when the cost stack priced a token, estimated dollars per agent per hour:
    tokens x ($/hour of an instance / tokens an instance serves in an hour). That is the cost of the
    agent's tokens at full throughput; idle capacity is not charged to anyone (`basis` says so)."""
    tokens = agent_tokens(metric, agents)
    widgets: list[cw.IWidget] = [_graph("Tokens per agent per hour (prompt + completion)", tokens, "tokens", 12)]
    if usd_per_million_tokens is None:
        widgets.append(cw.TextWidget(markdown=f"### Showback\n{basis}", width=12, height=6))
        return widgets
    rate = usd_per_million_tokens / 1e6
    dollars = [cw.MathExpression(expression=f"({t.expression}) * {rate:.10f}", using_metrics=dict(t.using_metrics),
                                 label=t.label, period=_1H) for t in tokens]
    widgets += [_graph(f"Estimated $ per agent per hour (${usd_per_million_tokens:.4f}/M tokens)", dollars, "USD", 12),
                cw.TextWidget(markdown=f"### Showback basis\n{basis}", width=24, height=2)]
    return widgets


def _graph(title: str, metrics: Sequence[cw.IMetric], unit: str, width: int = 8) -> cw.GraphWidget:
    return cw.GraphWidget(title=title, left=list(metrics), width=width, height=6,
                          left_y_axis=cw.YAxisProps(label=unit, min=0, show_units=False))
