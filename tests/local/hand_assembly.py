"""A hand-written cloud assembly with the resource types the app synthesizes (a stand-in and a regression
fixture for the deploy path): a stateful stack and an actions/compute stack that imports from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ASL = ROOT / "agent_image" / "agentfleet" / "spec" / "actions.asl.json"  # the base definition: no targets
SSM_STRING = "AWS::SSM::Parameter::Value<String>"


def _join(*parts: Any) -> dict[str, Any]:
    return {"Fn::Join": ["", list(parts)]}


def _table(key: str, gsi: bool = False) -> dict[str, Any]:
    props: dict[str, Any] = {
        "AttributeDefinitions": [{"AttributeName": key, "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST", "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
        "Replicas": [{"Region": "us-east-1", "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}}],
        "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS"},
        "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
    }
    if gsi:
        props["AttributeDefinitions"] += [{"AttributeName": "kind", "AttributeType": "S"},
                                          {"AttributeName": "at", "AttributeType": "S"}]
        props["GlobalSecondaryIndexes"] = [{"IndexName": "by_kind", "Projection": {"ProjectionType": "ALL"},
                                            "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"},
                                                          {"AttributeName": "at", "KeyType": "RANGE"}]}]
    return {"Type": "AWS::DynamoDB::GlobalTable", "Properties": props, "DeletionPolicy": "Retain"}


def stateful() -> dict[str, Any]:
    account_root = _join("arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "AWS::AccountId"}, ":root")
    return {
        "Parameters": {"BootstrapVersion": {"Type": SSM_STRING, "Default": "/cdk-bootstrap/hnb659fds/version"}},
        "Resources": {
            "StreamKey": {"Type": "AWS::KMS::Key", "Properties": {"EnableKeyRotation": True, "KeyPolicy": {
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": account_root},
                                                        "Action": "kms:*", "Resource": "*"}]}}},
            "Events": {"Type": "AWS::Kinesis::Stream", "Properties": {
                "RetentionPeriodHours": 24, "StreamModeDetails": {"StreamMode": "ON_DEMAND"},
                "StreamEncryption": {"EncryptionType": "KMS", "KeyId": {"Fn::GetAtt": ["StreamKey", "Arn"]}}}},
            "Memory": _table("pk"), "Leases": _table("shard_id"), "Audit": _table("pk", gsi=True),
            "CompileCache": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain",
                             "Properties": {"VersioningConfiguration": {"Status": "Enabled"}}},
            "CompileCachePolicy": {"Type": "AWS::S3::BucketPolicy", "Properties": {
                "Bucket": {"Ref": "CompileCache"}, "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*",
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    "Resource": [{"Fn::GetAtt": ["CompileCache", "Arn"]}]}]}}},
        },
        "Outputs": {
            "StreamName": {"Value": {"Ref": "Events"}, "Export": {"Name": "Hand:StreamName"}},
            "MemoryTableName": {"Value": {"Ref": "Memory"}},
            "LeasesTableName": {"Value": {"Ref": "Leases"}},
            "AuditTableName": {"Value": {"Ref": "Audit"}, "Export": {"Name": "Hand:AuditTableName"}},
            "CacheBucketName": {"Value": {"Ref": "CompileCache"}},
        },
        "Rules": {"CheckBootstrapVersion": {"Assertions": [{
            "Assert": {"Fn::Not": [{"Fn::Contains": [["1", "2", "3", "4", "5"], {"Ref": "BootstrapVersion"}]}]},
            "AssertDescription": "CDK bootstrap stack version 6 required."}]}},
    }


def actions() -> dict[str, Any]:
    audit = {"Fn::ImportValue": "Hand:AuditTableName"}
    return {
        "Parameters": {
            "BootstrapVersion": {"Type": SSM_STRING, "Default": "/cdk-bootstrap/hnb659fds/version"},
            "SsmParameterValueDlami": {"Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
                                       "Default": "/aws/service/neuron/dlami/base/ubuntu-22.04/latest/image_id"},
        },
        "Resources": {
            "NotifyTopic": {"Type": "AWS::SNS::Topic", "Properties": {}},
            "ApprovalTopic": {"Type": "AWS::SNS::Topic", "Properties": {}},
            "AlarmTopic": {"Type": "AWS::SNS::Topic", "Properties": {}},
            "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                        "Principal": {"Service": "states.amazonaws.com"}}]}}},
            "Actions": {"Type": "AWS::StepFunctions::StateMachine", "DependsOn": ["Role"], "Properties": {
                "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]}, "DefinitionString": ASL.read_text(),
                "DefinitionSubstitutions": {
                    "ApprovalTimeoutSeconds": "3600",
                    "ApprovalTopicArn": {"Ref": "ApprovalTopic"}, "NotifyTopicArn": {"Ref": "NotifyTopic"},
                    "AuditTableName": audit}}},
            "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}},
            "Subnet": {"Type": "AWS::EC2::Subnet", "Properties": {
                "VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.0.0.0/24", "AvailabilityZone": "us-east-1a"}},
            "LaunchTemplate": {"Type": "AWS::EC2::LaunchTemplate", "Properties": {"LaunchTemplateData": {
                "ImageId": {"Ref": "SsmParameterValueDlami"}, "InstanceType": "trn2.48xlarge"}}},
            "Fleet": {"Type": "AWS::AutoScaling::AutoScalingGroup", "Properties": {
                "MinSize": "0", "MaxSize": "2", "DesiredCapacity": "0", "VPCZoneIdentifier": [{"Ref": "Subnet"}],
                "LaunchTemplate": {"LaunchTemplateId": {"Ref": "LaunchTemplate"},
                                   "Version": {"Fn::GetAtt": ["LaunchTemplate", "LatestVersionNumber"]}}}},
            "LaunchHook": {"Type": "AWS::AutoScaling::LifecycleHook", "Properties": {
                "AutoScalingGroupName": {"Ref": "Fleet"}, "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
                "HeartbeatTimeout": 3600, "DefaultResult": "ABANDON"}},
            "ActionFailures": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
                "MetricName": "ExecutionsFailed", "Namespace": "AWS/States", "Statistic": "Sum", "Period": 300,
                "EvaluationPeriods": 1, "Threshold": 5, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "Dimensions": [{"Name": "StateMachineArn", "Value": {"Ref": "Actions"}}],
                "AlarmActions": [{"Ref": "AlarmTopic"}]}},
            "Dashboard": {"Type": "AWS::CloudWatch::Dashboard", "Properties": {
                "DashboardBody": _join('{"widgets":[{"type":"text","properties":{"markdown":"', {"Ref": "Actions"},
                                       '"}}]}')}},
            "RuntimeConfig": {"Type": "AWS::SSM::Parameter", "Properties": {
                "Type": "String", "Name": "/hand/runtime-config",
                "Value": {"Fn::Join": ["", ['{"state_machine_arn": "', {"Ref": "Actions"}, '"}']]}}},
        },
        "Outputs": {
            "StateMachineArn": {"Value": {"Ref": "Actions"}},
            "ApprovalTopicArn": {"Value": {"Ref": "ApprovalTopic"}},
            "NotifyTopicArn": {"Value": {"Ref": "NotifyTopic"}},
            "ActionFailuresAlarmArn": {"Value": {"Fn::GetAtt": ["ActionFailures", "Arn"]}},
        },
    }


def write(out: Path) -> Path:
    """Write the two stacks and a manifest (with the Actions stack depending on the stateful one)."""
    out.mkdir(parents=True, exist_ok=True)
    artifacts: dict[str, Any] = {}
    for name, template, deps in (("HandActions", actions(), ["HandStateful"]), ("HandStateful", stateful(), [])):
        (out / f"{name}.template.json").write_text(json.dumps(template, indent=1))
        artifacts[name] = {"type": "aws:cloudformation:stack", "environment": "aws://unknown-account/unknown-region",
                           "properties": {"templateFile": f"{name}.template.json"}, "dependencies": deps}
    (out / "manifest.json").write_text(json.dumps({"version": "55.0.0", "artifacts": artifacts}, indent=1))
    return out
