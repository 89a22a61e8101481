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
    config = make_config(batch_size="16", single_nat_gateway="true", instance_types="trn2.48xlarge,trn1.32xlarge",
                         availability_zone_ids="use2-az1,use2-az2", agents=json.dumps([AGENT]))
    assert config.batch_size == 16 and config.single_nat_gateway is True
    assert config.instance_types == ("trn2.48xlarge", "trn1.32xlarge")
    assert config.availability_zone_ids == ("use2-az1", "use2-az2")
    assert config.agents[0].name == "a"


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"on_demand_percentage_above_base": 101}, "on_demand_percentage_above_base must be between 0 and 100"),
    ({"on_demand_percentage_above_base": -1}, "on_demand_percentage_above_base must be between 0 and 100"),
    ({"min_capacity": 5, "max_capacity": 2, "desired_capacity": 2}, "min_capacity (5) must not exceed max_capacity (2)"),
    ({"desired_capacity": 9}, "desired_capacity (9) must be between"),
    ({"instance_types": []}, "instance_types must list at least one"),
    ({"instance_types": ["m7i.large"]}, "instance_types has 'm7i.large': instance type 'm7i.large' has no row in "
                                        "compat.json; add a row under 'instances'"),
    ({"instance_types": ["p5.48xlarge"]}, "'p5.48xlarge' has no row in compat.json"),
    ({"instance_types": ["trn2"]}, "instance_types has 'trn2'"),
    ({"instance_types": ["trn2.48xlarge", "trn2.48xlarge"]}, "instance_types lists a type twice"),
    ({"agents": [AGENT, AGENT]}, "duplicate agent name 'a'"),
    ({"agents": [{**AGENT, "allowed_actions": ["delete_prod"]}]},
     "'delete_prod', neither a built-in action nor a configured target; allowed: "),
    ({"agents": [{**AGENT, "approval_required": ["open_ticket"]}]}, "approval_required has 'open_ticket', which is not in"),
    ({"agents": []}, "agents must be a non-empty list"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"sequence_length": -5}, "sequence_length must be a positive integer"),
    ({"batch_size": "eight"}, "batch_size must be an integer, got 'eight'"),
    ({"spot_allocation_strategy": "cheapest"}, "spot_allocation_strategy must be one of price-capacity-optimized"),
    ({"kinesis_mode": "serverless"}, "kinesis_mode must be one of on-demand, provisioned"),
    ({"kinesis_retention_hours": 12}, "kinesis_retention_hours must be between 24 and 8760"),
    ({"serving_engine": "tgi"}, "serving_engine must be one of auto, optimum-neuron, vllm-neuron"),
    ({"single_nat_gateway": "maybe"}, "single_nat_gateway must be true or false"),
    ({"launch_hook_timeout_minutes": 121}, "launch_hook_timeout_minutes must be between 1 and 120"),
    ({"default_instance_warmup_minutes": 0}, "default_instance_warmup_minutes must be a positive integer"),
    ({"availability_zone_ids": ["us-east-2a"]}, "availability_zone_ids has 'us-east-2a', which is not an AZ id"),
    ({"sources": "[1]"}, "sources must be an object with eventbridge, custom, log_groups, github_webhook"),
    ({"sources": "{not json"}, "sources must be a JSON object"),
    ({"sources": {"eventbrige": []}}, "sources has unknown keys ['eventbrige']"),
    ({"sources": {"eventbridge": "alarms"}}, "sources.eventbridge must be a list"),
    ({"sources": {"eventbridge": ["cloudtrail"]}}, "sources.eventbridge has 'cloudtrail'; presets: alarms, codebuild"),
    ({"sources": {"eventbridge": ["ecs", "ecs"]}}, "sources.eventbridge lists a preset twice"),
    ({"sources": {"custom": [{"source": "my.app"}]}}, "sources.custom[0].detail_type must be a string"),
    ({"sources": {"custom": [{"source": "", "detail_type": "X"}]}}, "sources.custom[0] needs a non-empty source"),
    ({"sources": {"custom": [{"source": "a", "detail_type": "X", "key": "$.id"}]}}, "sources.custom[0] has unknown keys"),
    ({"sources": {"custom": [{"source": "a", "detail_type": "X", "partition_key_path": "detail.id"}]}},
     "sources.custom[0].partition_key_path must be a JSON path like '$.detail.name'"),
    ({"sources": {"custom": [{"source": "a", "detail_type": "X", "partition_key_path": "$." + "a" * 255}]}},
     "at most 256 characters"),
    ({"sources": {"eventbridge": ["alarms"], "custom": [
        {"source": "aws.cloudwatch", "detail_type": "CloudWatch Alarm State Change"}]}},
     "sources.custom repeats source 'aws.cloudwatch' / detail_type 'CloudWatch Alarm State Change'"),
    ({"sources": {"log_groups": ["/aws/lambda/a b"]}}, "sources.log_groups[0].name must be a log group name"),
    ({"sources": {"log_groups": [{"name": "/a", "filter_pattern": "x" * 1025}]}},
     "sources.log_groups[0].filter_pattern is longer than 1024 characters"),
    ({"sources": {"log_groups": ["/a", {"name": "/a"}]}}, "sources.log_groups names a log group twice"),
    ({"sources": {"log_groups": [3]}}, "sources.log_groups[0] must be an object with name, filter_pattern"),
    ({"sources": {"github_webhook": {"enabled": True}}},
     "sources.github_webhook.enabled needs sources.github_webhook.secret_name"),
    ({"sources": {"github_webhook": {"enabled": "yes", "secret_name": "s"}}},
     "sources.github_webhook.enabled must be true or false"),
    ({"sources": {"github_webhook": {"secret_name": "bad name!"}}},
     "sources.github_webhook.secret_name must be a Secrets Manager name"),
    ({"sources": {"github_webhook": {"reserved_concurrency": -1}}},
     "sources.github_webhook.reserved_concurrency must be an integer >= 0"),
    ({"sources": {"github_webhook": []}}, "sources.github_webhook must be an object with enabled, secret_name"),
])
def test_bad_value_names_the_key(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_config(**overrides)
    assert expected in str(err.value)


def test_sources_defaults_and_cli_json() -> None:
    sources = make_config().sources
    assert sources.eventbridge == ("alarms", "codebuild", "codepipeline", "guardduty", "securityhub")
    assert not sources.log_groups and not sources.github_webhook.enabled
    # `-c sources=...` passes JSON text; a bare log group name means every log event, a custom rule's
    # default partition key path is the account
    sources = make_config(sources=json.dumps({"log_groups": ["/aws/lambda/app"],
                                              "custom": [{"source": "my.app", "detail_type": "Order Placed"}]})).sources
    assert [(g.name, g.filter_pattern) for g in sources.log_groups] == [("/aws/lambda/app", "")]
    assert [(r.source, r.partition_key_path) for r in sources.rules] == [("my.app", "$.account")]


def test_trn3_driver_names_are_neuron_families() -> None:
    config = make_config(instance_types=["trn3pd98.3xlarge", "trn3.48xlarge"])
    assert config.instance_families == ("trn3pd98", "trn3")


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
