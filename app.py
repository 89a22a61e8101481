#!/usr/bin/env python3
"""Agent Fleet Kit CDK app: config -> stacks -> validations -> synth."""

import aws_cdk as cdk

from agentfleet.spec.catalog import ConfigError
from agentfleet.spec.fleet import FleetConfig, default_context
from stacks.fleet_app import build

# cdk.json's context are the defaults; the CLI's context (cdk.json plus -c key=value) wins.
app = cdk.App(context=default_context())
try:
    config = FleetConfig.from_context(app.node.try_get_context)
except ConfigError as err:
    raise SystemExit(f"Invalid fleet configuration: {err}") from None
build(app, config)
app.synth()
