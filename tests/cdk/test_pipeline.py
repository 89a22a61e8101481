"""The optional pipeline (enable_pipeline=true): synthesizes nag-clean and runs README's test command."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from agentfleet.spec.catalog import ConfigError
from agentfleet.spec.fleet import default_context
from stacks.fleet_app import build
from tests.cdk.conftest import make_config

PIPELINE = {"enable_pipeline": True, "pipeline_repository": "acme/agents",
            "pipeline_connection_arn": "arn:aws:codeconnections:us-east-1:123456789012:connection/abc"}


def test_pipeline_tests_then_deploys_the_fleet_stage(tmp_path: Path) -> None:
    app = cdk.App(context={**default_context(), **PIPELINE}, outdir=str(tmp_path))
    stacks = build(app, make_config(**PIPELINE))
    assert list(stacks) == ["AgentFleetPipeline"]
    template = Template.from_stack(stacks["AgentFleetPipeline"])
    projects = json.dumps(template.find_resources("AWS::CodeBuild::Project"))
    assert "make setup" in projects and "make test" in projects
    app.synth()  # nag gate included
    stage = json.loads((tmp_path / "manifest.json").read_text())["artifacts"]
    assert any(name.startswith("assembly-AgentFleetPipeline-Deploy") for name in stage)


def test_pipeline_needs_a_repository_and_connection() -> None:
    with pytest.raises(ConfigError, match="enable_pipeline needs pipeline_repository"):
        make_config(enable_pipeline=True)
