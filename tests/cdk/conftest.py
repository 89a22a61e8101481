"""The synthesized app, built once per test session with the committed cdk.json defaults."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from agentfleet.spec.fleet import FleetConfig, default_context
from stacks.fleet_app import build


def make_config(**overrides: Any) -> FleetConfig:
    context = {**default_context(), **overrides}
    return FleetConfig.from_context(context.get)


def synth(**overrides: Any) -> dict[str, Template]:
    app = cdk.App(context={**default_context(), **overrides})
    stacks = build(app, make_config(**overrides))
    return {name: Template.from_stack(stack) for name, stack in stacks.items()}


@pytest.fixture(scope="session")
def templates() -> dict[str, Template]:
    return synth()


@pytest.fixture(scope="session")
def template_of(templates: dict[str, Template]) -> Callable[[str], Template]:
    return templates.__getitem__
