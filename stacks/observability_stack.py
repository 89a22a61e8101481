"""ObservabilityStack: the dashboard (with its cost section), alarms, alarm topic and budget for one fleet."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct
from constructs.cost_controls import CostControls, HourlyPrices
from constructs.inference_widgets import showback_widgets
from constructs.observability import Observability

from agentfleet.spec.fleet import FleetConfig
from stacks import cost_model as cm
from stacks import cost_throughput as ct
from stacks.fleet_stack import FleetStack
from stacks.pricing import HOW_TO_SUPPLY, PriceTable, on_demand_id, with_context
from stacks.state_stack import StateStack


class ObservabilityStack(Stack):
    """Reads the other stacks' resources; owns nothing they depend on, so it deploys last."""

    def __init__(self, scope: Construct, construct_id: str, *, config: FleetConfig, state: StateStack,
                 fleet: FleetStack, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description=f"Agent Fleet Kit {config.fleet_name}: dashboard and alarms",
                         **kwargs)
        self.observability = Observability(
            self, "Observability", config=config, stream=state.ingest.stream,
            group_name=fleet.fleet.group.auto_scaling_group_name, state_machine=fleet.actions.state_machine)
        group_name = fleet.fleet.group.auto_scaling_group_name
        self.cost = CostControls(self, "CostControls", config=config, alarm_topic=self.observability.alarm_topic,
                                 asg_name=group_name,
                                 prices=dashboard_prices(config, with_context(PriceTable.shipped(),
                                                                              config.cost_prices or None)))
        agents = [a.name for a in config.agents]
        self.observability.add_section("Cost", [*self.cost.widgets, *showback_widgets(
            self.observability.metric, agents, self.cost.prices.usd_per_million_tokens, self.cost.prices.token_basis)])
        CfnOutput(self, "AlarmTopicArn", value=self.observability.alarm_topic.topic_arn)
        CfnOutput(self, "DashboardName", value=self.observability.dashboard.dashboard_name)


def dashboard_prices(config: FleetConfig, table: PriceTable) -> HourlyPrices:
    """The dashboard's per-instance $/hour for what the group may launch (the mix, or the only type)."""
    scenario = cm.scenarios(config)[-1]
    p = cm.scenario_prices(scenario, table, config)
    per_m, token_basis = token_price(config, table, scenario)
    types = list(dict.fromkeys(scenario.od_types + scenario.spot_types))
    if p["od_price"] is None or p["spot_price"] is None:
        missing = [on_demand_id(t) for t in types if table.on_demand(t) is None] or ["ec2/spot-discount"]
        note = (f"### Cost\n$/hour is not shown: no price for {', '.join(f'`{m}`' for m in missing)} "
                f"(never estimated). To supply it: {HOW_TO_SUPPLY.format(id=missing[0])}.")
        return HourlyPrices(None, None, note, cm.HOURS_PER_MONTH, per_m, token_basis)
    rows = [table.rows[on_demand_id(t)] for t in types]
    basis = "; ".join(f"`{r.id}` ${r.value:g}/h ({r.status}, {r.region or 'no region'}, {r.date})" for r in rows)
    note = (f"### Cost estimate\nOn-Demand ${p['od_price']:.4f}/h and Spot ${p['spot_price']:.4f}/h per instance "
            f"({scenario.name}). Prices: {basis}. Spot without an observed price is On-Demand less "
            f"`ec2/spot-discount`. Excludes services; `make cost` has the full estimate.")
    return HourlyPrices(p["od_price"], p["spot_price"], note, cm.HOURS_PER_MONTH, per_m, token_basis)


def token_price(config: FleetConfig, table: PriceTable, scenario: cm.Scenario) -> tuple[float | None, str]:
    """$ per million tokens on the scenario's On-Demand type: its $/hour over the tokens it serves in an hour
    (replicas x per-replica throughput, or a measured figure: stacks/cost_throughput.py)."""
    itype = scenario.od_types[0]
    price = table.on_demand(itype)
    tput, basis = ct.instance_throughput(config, table, itype)
    if price is None or tput is None:
        missing = on_demand_id(itype) if price is None else f"throughput/{itype}"
        return None, (f"$ per agent is not shown: no figure for `{missing}` (never estimated). "
                      f"To supply it: {HOW_TO_SUPPLY.format(id=missing)}.")
    per_m = price / (tput * 3600.0) * 1e6
    return per_m, (f"`{itype}` On-Demand ${price:g}/h over {tput:,.0f} tokens/s ({basis}) = ${per_m:.4f} per "
                   "million tokens: the cost of an agent's tokens at full throughput. Idle capacity is charged "
                   "to no agent; tokens are the workers' AgentPromptTokens + AgentCompletionTokens.")
