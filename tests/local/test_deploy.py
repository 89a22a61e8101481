"""The deploy path: cloud assemblies created in the emulator through its CloudFormation API."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from agentfleet.local import cfn_prep, deploy
from agentfleet.local.emulator import Emulator
from agentfleet.ops.aws import client

from . import hand_assembly

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_prepare_gives_ssm_parameters_local_defaults_and_defers_unmodelled_types() -> None:
    prepared = cfn_prep.prepare(hand_assembly.actions(), "S", "ami-123", cfn_prep.modelled_types())
    params = prepared.template["Parameters"]
    assert params["SsmParameterValueDlami"] == {"Type": "String", "Default": "ami-123"}
    assert params["BootstrapVersion"]["Type"] == "String"
    deferred = {d.logical_id: d for d in prepared.deferred}
    assert set(deferred) == {"LaunchHook", "ActionFailures", "Actions"}
    # The output that pointed at the alarm now names the alarm it will be created as.
    assert prepared.template["Outputs"]["ActionFailuresAlarmArn"]["Value"].endswith(":alarm:S-ActionFailures")


def test_hand_assembly_deploys_with_every_adaptation_logged(private_aws: Emulator, tmp_path: Path) -> None:
    result = deploy.deploy(hand_assembly.write(tmp_path), client, private_aws.endpoint)
    notes = "\n".join(result.notes)
    for expected in ("Memory: AWS::DynamoDB::GlobalTable created as AWS::DynamoDB::Table",
                     "LaunchHook: AWS::AutoScaling::LifecycleHook created", "ActionFailures: AWS::CloudWatch::Alarm "
                     "created", "CompileCachePolicy: AWS::S3::BucketPolicy created", "on-demand stream created"):
        assert expected in notes
    stream = client("kinesis").describe_stream_summary(StreamName=result.output("StreamName"))
    assert stream["StreamDescriptionSummary"]["OpenShardCount"] == cfn_prep.ON_DEMAND_SHARDS
    audit = client("dynamodb").describe_table(TableName=result.output("AuditTableName"))["Table"]
    assert audit["GlobalSecondaryIndexes"][0]["IndexName"] == "by_kind"
    assert client("cloudwatch").describe_alarms(AlarmNames=["HandActions-ActionFailures"])["MetricAlarms"]
    # The state machine got its substitutions: an action runs and records its outcome.
    sfn = client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=result.output("StateMachineArn"), name="d-1", input=json.dumps({
        "decision_id": "d-1", "agent": "a", "subject": "s", "action": "notify", "params": {"message": "m"},
        "rationale": "r", "approval_required": False}))["executionArn"]
    assert _wait(sfn, arn) == "SUCCEEDED"
    item = client("dynamodb").get_item(TableName=result.output("AuditTableName"), Key={"pk": {"S": "outcome#d-1"}})
    assert item["Item"]["outcome"]["S"] == "succeeded"


def test_synthesized_app_deploys(private_aws: Emulator, app_assembly: Path) -> None:
    result = deploy.deploy(app_assembly, client, private_aws.endpoint)
    assert len(result.outputs) == len(deploy.stacks_in_order(app_assembly))
    for stack in result.outputs:
        assert client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] == \
            "CREATE_COMPLETE"
    assert client("kinesis").describe_stream_summary(StreamName=result.output("StreamName"))
    parameter = client("ssm").get_parameter(Name=result.output("RuntimeConfigParameter"))["Parameter"]
    document = json.loads(parameter["Value"])
    assert document["state_machine_arn"] == result.output("StateMachineArn")
    assert document["audit_table"] == result.output("AuditTable")
    # Created through the API where the emulator's CloudFormation falls short, and said so.
    definition = client("stepfunctions").describe_state_machine(stateMachineArn=result.output("StateMachineArn"))
    assert "${" not in definition["definition"]  # DefinitionSubstitutions applied
    assert client("cloudwatch").describe_alarms()["MetricAlarms"]
    assert any("created through its API" in note for note in result.notes)


def _wait(sfn: Any, arn: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = str(sfn.describe_execution(executionArn=arn)["status"])
        if status != "RUNNING":
            return status
        time.sleep(0.2)
    return "RUNNING"
