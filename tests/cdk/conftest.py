"""The synthesized app, built once per test session with the committed cdk.json defaults."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from agentfleet.spec.fleet import FleetConfig, default_context
from stacks.fleet_app import build

ENV_KEYS = ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION")


def make_config(**overrides: Any) -> FleetConfig:
    context = {**default_context(), **overrides}
    return FleetConfig.from_context(context.get)


def synth(**overrides: Any) -> dict[str, Template]:
    """Environment-agnostic, whatever the shell sets: the CLI's CDK_DEFAULT_ACCOUNT/REGION would make
    stacks region-specific (stacks/fleet_app.py) and the snapshots depend on the machine."""
    saved = {key: os.environ.pop(key, None) for key in ENV_KEYS}
    try:
        app = cdk.App(context={**default_context(), **overrides})
        stacks = build(app, make_config(**overrides))
        return {name: Template.from_stack(stack) for name, stack in stacks.items()}
    finally:
        os.environ.update({key: value for key, value in saved.items() if value is not None})


@pytest.fixture(scope="session")
def templates() -> dict[str, Template]:
    return synth()


@pytest.fixture(scope="session")
def template_of(templates: dict[str, Template]) -> Callable[[str], Template]:
    return templates.__getitem__
