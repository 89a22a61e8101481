"""The dashboard's Inference section and per-agent showback, as synthesized."""

from __future__ import annotations

import json
from collections.abc import Callable

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk.assertions import Template
from constructs.inference_widgets import showback_widgets

from agentfleet.spec import metric_names as m
from tests.cdk.conftest import make_config

Get = Callable[[str], Template]
FIVE_MINUTES = cdk.Duration.minutes(5)


def _body(template: Template) -> str:
    (dashboard,) = template.find_resources("AWS::CloudWatch::Dashboard").values()
    return json.dumps(dashboard["Properties"]["DashboardBody"])


def _widgets(template: Template) -> list[dict[str, object]]:
    """The dashboard's widgets with the region token replaced, parsed back from the Fn::Join."""
    (dashboard,) = template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    text = "".join(p if isinstance(p, str) else "us-east-1" for p in parts)
    return json.loads(text)["widgets"]


def _graph(template: Template, title: str) -> list[list[object]]:
    for w in _widgets(template):
        props = w["properties"]
        if isinstance(props, dict) and str(props.get("title", "")).startswith(title):
            return props["metrics"]  # type: ignore[no-any-return]
    raise AssertionError(f"no widget titled {title!r}")


def test_inference_section_comes_after_agents(template_of: Get) -> None:
    body = _body(template_of("AgentFleetObservability"))
    assert body.index("## Agents") < body.index("## Inference") < body.index("## Fleet")


def test_in_flight_vs_slots_and_queue_vs_model_time(template_of: Get) -> None:
    template = template_of("AgentFleetObservability")
    slots = _graph(template, "In-flight requests vs slots")
    assert [(row[1], row[-1]["stat"]) for row in slots] == [(m.IN_FLIGHT_REQUESTS, "Sum"), (m.MODEL_SLOTS, "Sum")]
    times = _graph(template, "Queue time vs model time")
    assert sorted((row[1], row[-1]["stat"]) for row in times) == sorted(
        (n, p) for n in (m.QUEUE_TIME_MS, m.MODEL_TIME_MS) for p in ("p50", "p99"))


def test_per_replica_and_per_target_series_are_searches_over_the_runtime_dimensions(template_of: Get) -> None:
    template = template_of("AgentFleetObservability")
    for title, name, schema, stat in (
        ("Replica utilization", m.REPLICA_UTILIZATION, "{AgentFleet,Fleet,Replica}", "Average"),
        ("Prefix-cache hit rate", m.PREFIX_CACHE_HIT_RATE, "{AgentFleet,Fleet,Replica}", "Average"),
        ("Target deliveries", m.TARGET_DELIVERIES, "{AgentFleet,Fleet,Outcome,Target}", "Sum"),
    ):
        ((query,),) = _graph(template, title)
        assert query["expression"] == (f"SEARCH('{schema} MetricName=\"{name}\" Fleet=\"agentfleet\"', "
                                       f"'{stat}', 300)")
        assert "PROP('Dim." in query["label"]


def test_items_shed_and_tokens_have_one_series_per_configured_agent(template_of: Get) -> None:
    template = template_of("AgentFleetObservability")
    agents = [a.name for a in make_config().agents]
    shed = _graph(template, "Items shed per agent")
    assert [(row[1], row[3]) for row in shed] == [(m.ITEMS_SHED, a) for a in agents]
    tokens = _graph(template, "Tokens per agent per hour")
    labels = [row[0]["label"] for row in tokens if isinstance(row[0], dict)]
    assert labels == agents
    for name in (m.AGENT_PROMPT_TOKENS, m.AGENT_COMPLETION_TOKENS):
        assert sorted(row[3] for row in tokens if row[1:2] == [name]) == sorted(agents)


def _showback(rate: float | None) -> Template:
    stack = cdk.Stack(cdk.App(), "ShowbackTest")

    def metric(name: str, extra: dict[str, str] | None = None, *, statistic: str = "Sum",
               label: str | None = None, period: cdk.Duration = FIVE_MINUTES) -> cw.Metric:
        return cw.Metric(namespace=m.NAMESPACE, metric_name=name, statistic=statistic, label=label, period=period,
                         dimensions_map={m.FLEET: "f", **(extra or {})})

    cw.Dashboard(stack, "Dashboard", widgets=[showback_widgets(metric, ["a", "b"], rate, "basis text")])
    return Template.from_stack(stack)


def test_showback_dollars_are_tokens_times_the_price_per_token() -> None:
    template = _showback(2.5)  # $2.50 per million tokens = 0.0000025 $/token
    dollars = _graph(template, "Estimated $ per agent per hour ($2.5000/M tokens)")
    expressions = [row[0]["expression"] for row in dollars if isinstance(row[0], dict)]
    assert expressions == ["(FILL(p0, 0) + FILL(c0, 0)) * 0.0000025000", "(FILL(p1, 0) + FILL(c1, 0)) * 0.0000025000"]
    assert all(row[0]["period"] == 3600 for row in dollars if isinstance(row[0], dict))


def test_showback_without_a_price_says_why_instead_of_a_dollar_graph() -> None:
    template = _showback(None)
    body = _body(template)
    assert "Estimated $" not in body and "### Showback" in body and "basis text" in body
    _graph(template, "Tokens per agent per hour")  # tokens are still shown
