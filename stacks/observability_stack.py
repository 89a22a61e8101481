"""ObservabilityStack: the dashboard (with its cost section), alarms, alarm topic and budget for one fleet."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct
from constructs.cost_controls import CostControls
from constructs.observability import Observability

from stacks.config import FleetConfig
from stacks.fleet_stack import FleetStack
from stacks.pricing import PriceTable, with_context
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
                                 prices=with_context(PriceTable.shipped(), config.cost_prices or None))
        self.observability.add_section("Cost", self.cost.widgets)
        CfnOutput(self, "AlarmTopicArn", value=self.observability.alarm_topic.topic_arn)
        CfnOutput(self, "DashboardName", value=self.observability.dashboard.dashboard_name)
