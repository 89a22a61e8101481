"""The app's wiring, shared by app.py and the tests: stacks, tags and the cdk-nag validation."""

from __future__ import annotations

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.config import FleetConfig
from stacks.fleet_stack import FleetStack
from stacks.observability_stack import ObservabilityStack
from stacks.state_stack import StateStack


def build(app: cdk.App, config: FleetConfig) -> dict[str, cdk.Stack]:
    """Create every stack for `config` in `app`; returns them by construct id."""
    # Environment-agnostic (no credentials, no lookups) unless the CLI resolved an account/region.
    env = cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"))
    prefix = config.fleet_name
    state = StateStack(app, "AgentFleetState", stack_name=f"{prefix}-state", config=config, env=env)
    fleet = FleetStack(app, "AgentFleet", stack_name=f"{prefix}-fleet", config=config, state=state, env=env)
    observability = ObservabilityStack(app, "AgentFleetObservability", stack_name=f"{prefix}-observability",
                                       config=config, state=state, fleet=fleet, env=env)
    stacks: dict[str, cdk.Stack] = {s.node.id: s for s in (state, fleet, observability)}
    if config.enable_pipeline:
        from stacks.pipeline_stack import PipelineStack

        pipeline = PipelineStack(app, "AgentFleetPipeline", stack_name=f"{prefix}-pipeline", config=config, env=env)
        stacks[pipeline.node.id] = pipeline
    cdk.Tags.of(app).add("Fleet", config.fleet_name)
    cdk.Tags.of(app).add("CostCenter", config.cost_center)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stacks
