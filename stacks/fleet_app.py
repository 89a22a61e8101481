"""The app's wiring, shared by app.py and the tests: stacks, tags and the cdk-nag validation."""

from __future__ import annotations

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

from agentfleet.spec.fleet import FleetConfig
from stacks.fleet_stack import FleetStack
from stacks.observability_stack import ObservabilityStack
from stacks.state_stack import StateStack


def build(app: cdk.App, config: FleetConfig) -> dict[str, cdk.Stack]:
    """Create the app for `config`: the fleet's stacks, or (enable_pipeline) the pipeline that deploys them."""
    if config.enable_pipeline:
        from stacks.pipeline_stack import PipelineStack

        pipeline = PipelineStack(app, "AgentFleetPipeline", stack_name=f"{config.fleet_name}-pipeline", config=config,
                                 build_stacks=build_stacks, env=_env())
        stacks: dict[str, cdk.Stack] = {pipeline.node.id: pipeline}
    else:
        stacks = build_stacks(app, config)
    cdk.Tags.of(app).add("Fleet", config.fleet_name)
    cdk.Tags.of(app).add("CostCenter", config.cost_center)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stacks


def _env() -> cdk.Environment:
    # Environment-agnostic (no credentials, no lookups) unless the CLI resolved an account/region.
    return cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"))


def build_stacks(scope: Construct, config: FleetConfig) -> dict[str, cdk.Stack]:
    """The fleet's three stacks in `scope` (the app, or the pipeline's deploy stage)."""
    env = _env() if isinstance(scope, cdk.App) else None
    prefix = config.fleet_name
    state = StateStack(scope, "AgentFleetState", stack_name=f"{prefix}-state", config=config, env=env)
    fleet = FleetStack(scope, "AgentFleet", stack_name=f"{prefix}-fleet", config=config, state=state, env=env)
    observability = ObservabilityStack(scope, "AgentFleetObservability", stack_name=f"{prefix}-observability",
                                       config=config, state=state, fleet=fleet, env=env)
    return {s.node.id: s for s in (state, fleet, observability)}
