"""CostControls: the fleet's AWS Budgets budget and the dashboard's cost section."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from agentfleet import metric_names as mn
from stacks import cost_model as cm
from stacks.config import FleetConfig
from stacks.pricing import HOW_TO_SUPPLY, PriceTable, on_demand_id

# (threshold %, notification type): spend passed 80% / 100%, or is forecast to pass 100%.
NOTIFICATIONS = ((80, "ACTUAL"), (100, "ACTUAL"), (100, "FORECASTED"))
PERIOD = Duration.minutes(5)


class CostControls(Construct):
    """Creates `budget` (monthly COST budget on the fleet's `Fleet` cost-allocation tag, notifying the
    alarm topic at 80% and 100% actual and 100% forecast spend) and `widgets` (the dashboard's cost
    section: instances by market and an estimated $/hour from stacks/prices.json).

    `prices` defaults to the shipped table; pass `stacks.pricing.with_context(...)` to use the user's
    cdk context `cost_prices`. The `Fleet` tag must be activated as a cost allocation tag in Billing
    for the budget filter to match anything.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: FleetConfig, alarm_topic: sns.ITopic,
                 asg_name: str, prices: PriceTable | None = None) -> None:
        super().__init__(scope, construct_id)
        if config.monthly_budget_usd <= 0:
            raise ValueError(f"monthly_budget_usd must be positive, got {config.monthly_budget_usd}")
        self.prices = prices or PriceTable.shipped()
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
    of the rest (the same arithmetic as `stacks.cost_model.market_split`). GroupTotalInstances, not
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


def cost_widgets(config: FleetConfig, asg_name: str, prices: PriceTable) -> list[cloudwatch.IWidget]:
    """Instances by market (estimated and as the workers report it) and, when prices exist, $/hour."""
    od, spot = market_expressions(config, asg_name)
    measured = [cloudwatch.Metric(namespace=mn.NAMESPACE, metric_name=mn.WORKERS_IN_SERVICE,
                                  dimensions_map={mn.FLEET: config.fleet_name, mn.MARKET: market},
                                  statistic="Sum", period=Duration.minutes(1),
                                  label=f"Workers in service, {market} (reported)")
                for market in ("on-demand", "spot")]
    scenario = cm.scenarios(config)[-1]  # the mix (or the only type): what the group may launch
    p = cm.scenario_prices(scenario, prices)
    graph = cloudwatch.GraphWidget(title="Instances by market", left=[od, spot, *measured], width=12, height=6,
                                   left_y_axis=cloudwatch.YAxisProps(label="instances", min=0, show_units=False))
    budget_line = (f"Budget **${config.monthly_budget_usd:,}/month** on tag `Fleet={config.fleet_name}`; "
                   "alerts at 80% and 100% actual, 100% forecast, to the alarm topic.")
    if p["od_price"] is None or p["spot_price"] is None:
        missing = [on_demand_id(t) for t in dict.fromkeys(scenario.od_types + scenario.spot_types)
                   if prices.on_demand(t) is None] or ["ec2/spot-discount"]
        note = (f"### Cost\n$/hour is not shown: no price for {', '.join(f'`{m}`' for m in missing)} "
                f"(never estimated). To supply it: {HOW_TO_SUPPLY.format(id=missing[0])}.\n\n{budget_line}")
        return [graph, cloudwatch.TextWidget(markdown=note, width=12, height=6)]
    usd = cloudwatch.MathExpression(
        expression=f"od * {p['od_price']:.5f} + spot * {p['spot_price']:.5f}", using_metrics={"od": od, "spot": spot},
        label="Estimated $/hour", period=PERIOD)
    monthly = cloudwatch.MathExpression(expression=f"usd * {cm.HOURS_PER_MONTH:g}", using_metrics={"usd": usd},
                                        label="Run rate $/month", period=PERIOD)
    rows = [prices.rows[i] for i in (on_demand_id(t) for t in dict.fromkeys(scenario.od_types + scenario.spot_types))]
    basis = "; ".join(f"`{r.id}` ${r.value:g}/h ({r.status}, {r.region or 'no region'}, {r.date})" for r in rows)
    note = (f"### Cost estimate\nOn-Demand ${p['od_price']:.4f}/h and Spot ${p['spot_price']:.4f}/h per instance "
            f"({scenario.name}). Prices: {basis}. Spot without an observed price is On-Demand less "
            f"`ec2/spot-discount`. Excludes services; `make cost` has the full estimate.\n\n{budget_line}")
    return [
        graph,
        cloudwatch.GraphWidget(title="Estimated compute $/hour", left=[usd], width=6, height=6,
                               left_y_axis=cloudwatch.YAxisProps(label="USD/hour", min=0, show_units=False)),
        cloudwatch.SingleValueWidget(title="Compute run rate", metrics=[usd, monthly], width=6, height=6),
        cloudwatch.TextWidget(markdown=note, width=24, height=3),
    ]
