"""CostControls synthesized in a tiny stack: the budget, its topic permission and the cost widgets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Match, Template
from constructs.cost_controls import CostControls

from agentfleet.spec.fleet import FleetConfig
from stacks.cost import load_context
from stacks.observability_stack import dashboard_prices
from stacks.pricing import PriceRow, PriceTable

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def _config(*overrides: str) -> FleetConfig:
    return FleetConfig.from_context(load_context(CDK_JSON, list(overrides)).get)


def _synth(config: FleetConfig, prices: PriceTable | None = None) -> tuple[Template, CostControls]:
    stack = cdk.Stack(cdk.App(), "CostTest", env=cdk.Environment(account="123456789012", region="us-east-1"))
    topic = sns.Topic(stack, "Alarms")
    controls = CostControls(stack, "Cost", config=config, alarm_topic=topic, asg_name="fleet-asg",
                            prices=dashboard_prices(config, prices or PriceTable.shipped()))
    cloudwatch.Dashboard(stack, "Dashboard", widgets=[controls.widgets])
    return Template.from_stack(stack), controls


@pytest.fixture(scope="module")
def priced() -> tuple[Template, CostControls]:
    return _synth(_config("instance_types=inf2.48xlarge", "monthly_budget_usd=5000",
                          "on_demand_base_capacity=1", "on_demand_percentage_above_base=25"))


def _dashboard_body(template: Template) -> str:
    (dashboard,) = template.find_resources("AWS::CloudWatch::Dashboard").values()
    return json.dumps(dashboard["Properties"]["DashboardBody"])


def test_budget_is_monthly_cost_with_the_configured_limit_and_fleet_tag(priced: tuple[Template, Any]) -> None:
    template, _ = priced
    template.resource_count_is("AWS::Budgets::Budget", 1)
    template.has_resource_properties("AWS::Budgets::Budget", {"Budget": {
        "BudgetType": "COST", "TimeUnit": "MONTHLY", "BudgetLimit": {"Amount": 5000, "Unit": "USD"},
        "CostFilters": {"TagKeyValue": ["user:Fleet$agentfleet"]}}})


def test_budget_notifies_the_topic_at_80_and_100_percent(priced: tuple[Template, Any]) -> None:
    template, _ = priced
    (budget,) = template.find_resources("AWS::Budgets::Budget").values()
    notes = budget["Properties"]["NotificationsWithSubscribers"]
    assert sorted((n["Notification"]["Threshold"], n["Notification"]["NotificationType"]) for n in notes) == [
        (80, "ACTUAL"), (100, "ACTUAL"), (100, "FORECASTED")]
    for n in notes:
        assert n["Notification"]["ThresholdType"] == "PERCENTAGE"
        assert n["Notification"]["ComparisonOperator"] == "GREATER_THAN"
        (sub,) = n["Subscribers"]
        assert sub["SubscriptionType"] == "SNS"
    topic_id = next(iter(template.find_resources("AWS::SNS::Topic")))
    assert all(n["Subscribers"][0]["Address"] == {"Ref": topic_id} for n in notes)


def test_budgets_may_publish_only_for_this_account_and_first(priced: tuple[Template, Any]) -> None:
    template, _ = priced
    template.has_resource_properties("AWS::SNS::TopicPolicy", {"PolicyDocument": {"Statement": Match.array_with([
        Match.object_like({
            "Effect": "Allow", "Action": "sns:Publish",
            "Principal": {"Service": "budgets.amazonaws.com"},
            "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"},
                          "ArnLike": {"aws:SourceArn": Match.any_value()}},
        })])}})
    ((policy_id, policy),) = template.find_resources("AWS::SNS::TopicPolicy").items()
    # arn:<partition>:budgets::123456789012:* (the partition stays a token without the app's feature flags)
    assert ":budgets::123456789012:*" in json.dumps(policy)
    (budget,) = template.find_resources("AWS::Budgets::Budget").values()
    assert policy_id in budget["DependsOn"]


def test_widget_prices_instances_by_market_with_metric_math(priced: tuple[Template, Any]) -> None:
    template, controls = priced
    body = _dashboard_body(template)
    assert "GroupTotalInstances" in body and "fleet-asg" in body
    # base 1, 25% above base; inf2.48xlarge On-Demand 12.98127, Spot 12.98127 * (1 - 0.6) = 5.19251
    assert "IF(total > 1, 1 + (total - 1) * 0.25, total)" in body
    assert "total - od" in body
    assert "od * 12.98127 + spot * 5.19251" in body
    assert "usd * 730" in body
    assert "WorkersInService" in body
    kinds = [type(w).__name__ for w in controls.widgets]
    assert kinds == ["GraphWidget", "GraphWidget", "SingleValueWidget", "TextWidget"]


def test_missing_trn3_price_shows_counts_and_how_to_supply_it() -> None:
    template, controls = _synth(_config())  # cdk.json default: trn3.48xlarge first
    body = _dashboard_body(template)
    assert "Estimated $/hour" not in body
    assert "ec2/on-demand/trn3.48xlarge" in body and "cost_prices" in body
    assert [type(w).__name__ for w in controls.widgets] == ["GraphWidget", "TextWidget"]


def test_user_prices_reach_the_widget() -> None:
    prices = PriceTable.shipped().merged([PriceRow("ec2/on-demand/trn3.48xlarge", 40.0, "USD/hour", "us-east-1",
                                                   "test quote", "2026-11-22", "user")])
    template, _ = _synth(_config(), prices)
    body = _dashboard_body(template)
    # mix: On-Demand = first type trn3 = 40; the default config buys no Spot (On-Demand 100%), so Spot is 0
    assert "od * 40.00000 + spot * 0.00000" in body
