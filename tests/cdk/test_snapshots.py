"""One normalized snapshot per stack. Update on purpose: `pytest tests/cdk --snapshot-update`."""

from __future__ import annotations

import json
import re

import pytest
from aws_cdk.assertions import Template
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

# Asset hashes change with any byte under agent_image/ or the CDK version; they are not behaviour.
_HASH = re.compile(r"[0-9a-f]{64}")


def normalize(template: Template) -> object:
    return json.loads(_HASH.sub("<asset-hash>", json.dumps(template.to_json(), sort_keys=True)))


@pytest.mark.parametrize("stack", ["AgentFleetState", "AgentFleet", "AgentFleetObservability"])
def test_stack_snapshot(stack: str, templates: dict[str, Template], snapshot: SnapshotAssertion) -> None:
    assert normalize(templates[stack]) == snapshot(extension_class=JSONSnapshotExtension)
