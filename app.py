#!/usr/bin/env python3
"""Agent Fleet Kit CDK app: config -> stacks -> validations -> synth."""

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from agentfleet.catalog import ConfigError
from stacks.config import FleetConfig, default_context
from stacks.fleet_stack import FleetStack
from stacks.observability_stack import ObservabilityStack
from stacks.state_stack import StateStack

app = cdk.App(context=default_context())
try:
    config = FleetConfig.from_context(app.node.try_get_context)
except ConfigError as err:
    raise SystemExit(f"Invalid fleet configuration: {err}") from None

# Environment-agnostic (no credentials, no lookups) unless the CLI resolved an account/region.
env = cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"))
prefix = config.fleet_name
state = StateStack(app, "AgentFleetState", stack_name=f"{prefix}-state", config=config, env=env)
fleet = FleetStack(app, "AgentFleet", stack_name=f"{prefix}-fleet", config=config, state=state, env=env)
ObservabilityStack(app, "AgentFleetObservability", stack_name=f"{prefix}-observability", config=config,
                   state=state, fleet=fleet, env=env)
if config.enable_pipeline:
    from stacks.pipeline_stack import PipelineStack

    PipelineStack(app, "AgentFleetPipeline", stack_name=f"{prefix}-pipeline", config=config, env=env)

cdk.Tags.of(app).add("Fleet", config.fleet_name)
cdk.Tags.of(app).add("CostCenter", config.cost_center)
cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
app.synth()
