"""FleetConfig: every bad value fails synth with a message naming the key and what is allowed."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from agentfleet.spec.catalog import ConfigError
from agentfleet.spec.fleet import default_context
from tests.cdk.conftest import make_config

AGENT = {"name": "a", "system_prompt": "p", "subscribes_to": ["ci.failed"], "allowed_actions": ["notify"]}


def test_defaults_are_valid_and_typed() -> None:
    config = make_config()
    assert config.instance_types == ("trn3.48xlarge", "trn2.48xlarge")
    assert config.spot_allocation_strategy == "price-capacity-optimized"
    assert config.kinesis_mode == "on-demand"
    assert {a.name for a in config.agents} >= {"ci-triage", "alarm-responder"}


def test_cli_strings_are_coerced() -> None:
    # `cdk synth -c key=value` passes every value as a string
    config = make_config(batch_size="16", allow_gpu_fallback="true", instance_types="trn2.48xlarge,g6e.12xlarge",
                         agents=json.dumps([AGENT]))
    assert config.batch_size == 16 and config.allow_gpu_fallback is True
    assert config.instance_types == ("trn2.48xlarge", "g6e.12xlarge")
    assert config.agents[0].name == "a"


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"on_demand_percentage_above_base": 101}, "on_demand_percentage_above_base must be between 0 and 100"),
    ({"on_demand_percentage_above_base": -1}, "on_demand_percentage_above_base must be between 0 and 100"),
    ({"min_capacity": 5, "max_capacity": 2, "desired_capacity": 2}, "min_capacity (5) must not exceed max_capacity (2)"),
    ({"desired_capacity": 9}, "desired_capacity (9) must be between"),
    ({"instance_types": []}, "instance_types must list at least one"),
    ({"instance_types": ["m7i.large"]}, "family 'm7i' is not allowed; allowed families: trn1, trn1n, trn2, trn2u, trn3*, inf2"),
    ({"instance_types": ["p5.48xlarge"]}, "GPU families need allow_gpu_fallback=true"),
    ({"instance_types": ["trn2"]}, "is not an instance type"),
    ({"agents": [AGENT, AGENT]}, "duplicate agent name 'a'"),
    ({"agents": [{**AGENT, "allowed_actions": ["delete_prod"]}]}, "'delete_prod', not in the action catalog; allowed: "),
    ({"agents": [{**AGENT, "approval_required": ["open_ticket"]}]}, "approval_required has 'open_ticket', which is not in"),
    ({"agents": []}, "agents must be a non-empty list"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"sequence_length": -5}, "sequence_length must be a positive integer"),
    ({"batch_size": "eight"}, "batch_size must be an integer, got 'eight'"),
    ({"spot_allocation_strategy": "cheapest"}, "spot_allocation_strategy must be one of price-capacity-optimized"),
    ({"kinesis_mode": "serverless"}, "kinesis_mode must be one of on-demand, provisioned"),
    ({"kinesis_retention_hours": 12}, "kinesis_retention_hours must be between 24 and 8760"),
    ({"serving_engine": "tgi"}, "serving_engine must be one of auto, optimum-neuron, vllm-neuron"),
    ({"allow_gpu_fallback": "maybe"}, "allow_gpu_fallback must be true or false"),
])
def test_bad_value_names_the_key(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_config(**overrides)
    assert expected in str(err.value)


def test_gpu_family_is_allowed_only_with_fallback() -> None:
    assert make_config(instance_types=["trn2.48xlarge", "p5.48xlarge"], allow_gpu_fallback=True).instance_families == (
        "trn2", "p5")


def test_trn3_variants_are_neuron_families() -> None:
    assert make_config(instance_types=["trn3u.48xlarge", "trn3.3xlarge"]).instance_families == ("trn3u", "trn3")


def test_missing_key_is_named() -> None:
    context = default_context()
    del context["batch_size"]
    with pytest.raises(ConfigError, match="context key 'batch_size' is missing"):
        from agentfleet.spec.fleet import FleetConfig

        FleetConfig.from_context(context.get)


def test_synth_fails_with_one_clear_line(tmp_path: Any) -> None:
    env = {"CDK_CONTEXT_JSON": json.dumps({"min_capacity": 3, "max_capacity": 1}), "CDK_OUTDIR": str(tmp_path),
           "PATH": "/usr/bin:/bin", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    result = subprocess.run([sys.executable, "app.py"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "Invalid fleet configuration: min_capacity (3) must not exceed max_capacity (1)")
