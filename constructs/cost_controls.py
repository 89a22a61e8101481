"""CostControls: the fleet's AWS Budgets budget and the dashboard's cost section."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from agentfleet.spec import metric_names as mn
from agentfleet.spec.fleet import FleetConfig

# (threshold %, notification type): spend passed 80% / 100%, or is forecast to pass 100%.
NOTIFICATIONS = ((80, "ACTUAL"), (100, "ACTUAL"), (100, "FORECASTED"))
PERIOD = Duration.minutes(5)


@dataclass(frozen=True)
class HourlyPrices:
    """Per-instance $/hour for the dashboard, priced by the stack (stacks.cost_model.dashboard_prices).

    `on_demand`/`spot` are None when a price is missing (never estimated); `note` is the markdown
    that explains the basis, or what is missing and how to supply it."""

    on_demand: float | None
    spot: float | None
    note: str
    hours_per_month: float = 730.0
    # $ per million tokens of one On-Demand instance at its rated throughput (showback), None when the
    # price or throughput is missing; `token_basis` says how it was computed or what is missing.
    usd_per_million_tokens: float | None = None
    token_basis: str = ""


class CostControls(Construct):
    """Creates `budget` (monthly COST budget on the fleet's `Fleet` cost-allocation tag, notifying the
    alarm topic at 80% and 100% actual and 100% forecast spend) and `widgets` (the dashboard's cost
    section: instances by market and an estimated $/hour at `prices`, which the stack computes from
    stacks/prices.json and the user's `cost_prices`). The `Fleet` tag must be activated as a cost allocation tag in Billing
    for the budget filter to match anything.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: FleetConfig, alarm_topic: sns.ITopic,
                 asg_name: str, prices: HourlyPrices) -> None:
        super().__init__(scope, construct_id)
        if config.monthly_budget_usd <= 0:
            raise ValueError(f"monthly_budget_usd must be positive, got {config.monthly_budget_usd}")
        self.prices = prices
        # Budgets checks at creation that it may publish to the topic, so the policy comes first.
        topic_stack = Stack.of(alarm_topic)
        self.topic_policy_statement = iam.PolicyStatement(
            sid="AllowAwsBudgetsPublish",
            principals=[iam.ServicePrincipal("budgets.amazonaws.com")],
            actions=["sns:Publish"],
            resources=[alarm_topic.topic_arn],
            conditions={
                "StringEquals": {"aws:SourceAccount": topic_stack.account},
                "ArnLike": {"aws:SourceArn": f"arn:{topic_stack.partition}:budgets::{topic_stack.account}:*"},
            },
        )
        added = alarm_topic.add_to_resource_policy(self.topic_policy_statement)
        self.budget = budgets.CfnBudget(
            self, "Budget",
            budget=budgets.CfnBudget.BudgetDataProperty(
                budget_type="COST",
                time_unit="MONTHLY",
                budget_limit=budgets.CfnBudget.SpendProperty(amount=config.monthly_budget_usd, unit="USD"),
                cost_filters={"TagKeyValue": [f"user:Fleet${config.fleet_name}"]},
            ),
            notifications_with_subscribers=[
                budgets.CfnBudget.NotificationWithSubscribersProperty(
                    notification=budgets.CfnBudget.NotificationProperty(
                        comparison_operator="GREATER_THAN", notification_type=kind, threshold=pct,
                        threshold_type="PERCENTAGE"),
                    subscribers=[budgets.CfnBudget.SubscriberProperty(
                        subscription_type="SNS", address=alarm_topic.topic_arn)],
                )
                for pct, kind in NOTIFICATIONS
            ],
        )
        if added.policy_dependable is not None:
            self.budget.node.add_dependency(added.policy_dependable)
        self.widgets: list[cloudwatch.IWidget] = cost_widgets(config, asg_name, self.prices)


def market_expressions(config: FleetConfig, asg_name: str) -> tuple[cloudwatch.MathExpression,
                                                                      cloudwatch.MathExpression]:
    """(On-Demand, Spot) instance counts estimated from the group's instance count.

    CloudWatch has no per-market metric for an Auto Scaling group, so the split applies the group's
    own rule: the first `on_demand_base_capacity` are On-Demand, then `on_demand_percentage_above_base`
    of the rest (the same arithmetic as the cost model's `market_split`). GroupTotalInstances, not
    GroupInServiceInstances: an instance is billed while it boots and compiles (Pending:Wait), before
    it is in service.
    """
    total = cloudwatch.Metric(namespace="AWS/AutoScaling", metric_name="GroupTotalInstances",
                              dimensions_map={"AutoScalingGroupName": asg_name}, statistic="Average",
                              period=PERIOD)
    base, share = config.on_demand_base_capacity, config.on_demand_percentage_above_base / 100.0
    od = cloudwatch.MathExpression(
        expression=f"IF(total > {base}, {base} + (total - {base}) * {share:g}, total)",
        using_metrics={"total": total}, label="On-Demand (estimated)", period=PERIOD)
    spot = cloudwatch.MathExpression(expression="total - od", using_metrics={"total": total, "od": od},
                                     label="Spot (estimated)", period=PERIOD)
    return od, spot


def cost_widgets(config: FleetConfig, asg_name: str, prices: HourlyPrices) -> list[cloudwatch.IWidget]:
    """Instances by market (estimated and as the workers report it) and, when prices exist, $/hour."""
    od, spot = market_expressions(config, asg_name)
    measured = [cloudwatch.Metric(namespace=mn.NAMESPACE, metric_name=mn.WORKERS_IN_SERVICE,
                                  dimensions_map={mn.FLEET: config.fleet_name, mn.MARKET: market},
                                  statistic="Sum", period=Duration.minutes(1),
                                  label=f"Workers in service, {market} (reported)")
                for market in ("on-demand", "spot")]
    graph = cloudwatch.GraphWidget(title="Instances by market", left=[od, spot, *measured], width=12, height=6,
                                   left_y_axis=cloudwatch.YAxisProps(label="instances", min=0, show_units=False))
    budget_line = (f"Budget **${config.monthly_budget_usd:,}/month** on tag `Fleet={config.fleet_name}`; "
                   "alerts at 80% and 100% actual, 100% forecast, to the alarm topic.")
    if prices.on_demand is None or prices.spot is None:
        return [graph, cloudwatch.TextWidget(markdown=f"{prices.note}\n\n{budget_line}", width=12, height=6)]
    usd = cloudwatch.MathExpression(
        expression=f"od * {prices.on_demand:.5f} + spot * {prices.spot:.5f}", using_metrics={"od": od, "spot": spot},
        label="Estimated $/hour", period=PERIOD)
    monthly = cloudwatch.MathExpression(expression=f"usd * {prices.hours_per_month:g}", using_metrics={"usd": usd},
                                        label="Run rate $/month", period=PERIOD)
    return [
        graph,
        cloudwatch.GraphWidget(title="Estimated compute $/hour", left=[usd], width=6, height=6,
                               left_y_axis=cloudwatch.YAxisProps(label="USD/hour", min=0, show_units=False)),
        cloudwatch.SingleValueWidget(title="Compute run rate", metrics=[usd, monthly], width=6, height=6),
        cloudwatch.TextWidget(markdown=f"{prices.note}\n\n{budget_line}", width=24, height=3),
    ]
