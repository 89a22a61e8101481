"""One normalized snapshot per stack. Update on purpose: `pytest tests/cdk --snapshot-update`."""

from __future__ import annotations

import json
import re

import pytest
from aws_cdk.assertions import Template
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from tests.cdk.conftest import synth

# Asset hashes change with any byte under agent_image/ or the CDK version; they are not behaviour.
_HASH = re.compile(r"[0-9a-f]{64}")


def normalize(template: Template) -> object:
    return json.loads(_HASH.sub("<asset-hash>", json.dumps(template.to_json(), sort_keys=True)))


@pytest.mark.parametrize("stack", ["AgentFleetState", "AgentFleet", "AgentFleetObservability"])
def test_stack_snapshot(stack: str, templates: dict[str, Template], snapshot: SnapshotAssertion) -> None:
    assert normalize(templates[stack]) == snapshot(extension_class=JSONSnapshotExtension)


def test_snapshots_do_not_depend_on_the_shells_cdk_environment(templates: dict[str, Template],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "111122223333")
    monkeypatch.setenv("CDK_DEFAULT_REGION", "eu-west-1")
    again = synth()
    for stack in templates:
        assert again[stack].to_json() == templates[stack].to_json(), stack
