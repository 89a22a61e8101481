"""Assertion tests: the properties that matter, per construct (never a hashed logical ID)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_cdk.assertions import Capture, Match, Template

from agentfleet.spec import metric_names as m
from agentfleet.spec import tables

Get = Callable[[str], Template]


def test_stream_is_on_demand_cmk_encrypted_with_retention(template_of: Get) -> None:
    template_of("AgentFleetState").has_resource_properties("AWS::Kinesis::Stream", {
        "StreamModeDetails": {"StreamMode": "ON_DEMAND"},
        "StreamEncryption": {"EncryptionType": "KMS", "KeyId": Match.any_value()},
        "RetentionPeriodHours": 24,
    })


def test_provisioned_stream_uses_the_shard_count() -> None:
    from tests.cdk.conftest import synth

    synth(kinesis_mode="provisioned", kinesis_shard_count=6)["AgentFleetState"].has_resource_properties(
        "AWS::Kinesis::Stream", {"ShardCount": 6, "StreamModeDetails": {"StreamMode": "PROVISIONED"}})


def test_tables_have_pitr_cmk_retain_and_the_runtime_keys(template_of: Get) -> None:
    state = template_of("AgentFleetState")
    found = state.find_resources("AWS::DynamoDB::Table")
    assert len(found) == 3
    for resource in found.values():
        assert resource["DeletionPolicy"] == "Retain"
        props = resource["Properties"]
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["SSESpecification"]["SSEEnabled"] is True and "KMSMasterKeyId" in props["SSESpecification"]
    keys = {r["Properties"]["KeySchema"][0]["AttributeName"] for r in found.values()}
    assert keys == {tables.MEMORY_PK, tables.LEASES_PK, tables.AUDIT_PK}
    state.has_resource_properties("AWS::DynamoDB::Table", {
        "TimeToLiveSpecification": {"AttributeName": tables.TTL_ATTRIBUTE, "Enabled": True}})
    state.has_resource_properties("AWS::DynamoDB::Table", {
        "GlobalSecondaryIndexes": [Match.object_like({"IndexName": tables.AUDIT_INDEX})]})
    assert not state.find_resources("AWS::DynamoDB::GlobalTable")


def test_compile_cache_bucket_is_locked_down(template_of: Get) -> None:
    state = template_of("AgentFleetState")
    state.has_resource_properties("AWS::S3::Bucket", {
        "VersioningConfiguration": {"Status": "Enabled"},
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                           "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
        "BucketEncryption": Match.any_value(),
        "LoggingConfiguration": Match.object_like({"LogFilePrefix": "compile-cache/"}),
        "LifecycleConfiguration": {"Rules": [Match.object_like({
            "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}})]},
    })
    state.has_resource_properties("AWS::S3::BucketPolicy", {"PolicyDocument": {"Statement": Match.array_with([
        Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})])}})


def test_group_replaces_instances_on_template_change(template_of: Get) -> None:
    groups = template_of("AgentFleet").find_resources("AWS::AutoScaling::AutoScalingGroup")
    (group,) = groups.values()
    assert group["UpdatePolicy"]["AutoScalingRollingUpdate"]["MaxBatchSize"] == 1


def test_launch_template_imdsv2_encrypted_gp3_dlami_from_ssm_no_key(template_of: Get) -> None:
    fleet = template_of("AgentFleet")
    data = Capture()
    fleet.has_resource_properties("AWS::EC2::LaunchTemplate", {"LaunchTemplateData": Match.object_like({
        "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2},
        "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {
            "VolumeSize": 500, "VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True}}],
        "UserData": data,
    })})
    template = fleet.to_json()
    assert "KeyName" not in json.dumps(template["Resources"])
    params = template["Parameters"]
    ssm = [p for p in params.values() if p["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"]
    # one parameter per launch template, all the Ubuntu 24.04 base DLAMI (aws-neuron-sdk dlami.rst)
    assert {p["Default"] for p in ssm} == {"/aws/service/neuron/dlami/base/ubuntu-24.04/latest/image_id"}
    user_data = json.dumps(data.as_object())
    assert "/dev/neuron*" in user_data and "AGENTFLEET_CONFIG=ssm:/agentfleet/agentfleet/runtime-config" in user_data


def test_security_group_has_no_ingress(template_of: Get) -> None:
    for sg in template_of("AgentFleet").find_resources("AWS::EC2::SecurityGroup").values():
        assert "SecurityGroupIngress" not in sg["Properties"]


def test_vpc_has_private_subnets_and_gateway_endpoints(template_of: Get) -> None:
    fleet = template_of("AgentFleet")
    endpoints = fleet.find_resources("AWS::EC2::VPCEndpoint")
    services = {json.dumps(e["Properties"]["ServiceName"]) for e in endpoints.values()}
    assert any(".s3" in s for s in services) and any(".dynamodb" in s for s in services)
    assert all(e["Properties"]["VpcEndpointType"] == "Gateway" for e in endpoints.values())
    fleet.has_resource_properties("AWS::EC2::FlowLog", {"TrafficType": "REJECT"})


def test_backlog_scaling_policy_tracks_the_workers_metric(template_of: Get) -> None:
    template_of("AgentFleet").has_resource_properties("AWS::AutoScaling::ScalingPolicy", {
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingConfiguration": Match.object_like({"TargetValue": 500, "CustomizedMetricSpecification": {
            "MetricName": m.BACKLOG_RECORDS, "Namespace": m.NAMESPACE, "Statistic": "Average",
            "Dimensions": [{"Name": m.FLEET, "Value": "agentfleet"}]}}),
    })


def test_state_machine_is_standard_logged_traced_from_the_asl_file(template_of: Get) -> None:
    fleet = template_of("AgentFleet")
    fleet.has_resource_properties("AWS::StepFunctions::StateMachine", {
        "StateMachineType": "STANDARD",
        "LoggingConfiguration": Match.object_like({"Level": "ALL", "IncludeExecutionData": True}),
        "TracingConfiguration": {"Enabled": True},
        "DefinitionSubstitutions": Match.object_like({"ApprovalTimeoutSeconds": "3600"}),
    })
    fleet.has_resource_properties("AWS::Logs::LogGroup", {"KmsKeyId": Match.any_value()})
    for topic in fleet.find_resources("AWS::SNS::Topic").values():
        assert "KmsMasterKeyId" in topic["Properties"]


def test_runtime_config_document_names_every_resource(template_of: Get) -> None:
    fleet = template_of("AgentFleet")
    value = Capture()
    fleet.has_resource_properties("AWS::SSM::Parameter", {"Name": "/agentfleet/agentfleet/runtime-config",
                                                          "Value": value, "Tier": "Intelligent-Tiering"})
    text = json.dumps(value.as_object())
    for key in ("stream_name", "memory_table", "leases_table", "audit_table", "state_machine_arn",
                "cache_bucket", "asg_name", "launch_hook_name", "termination_hook_name", "agents"):
        assert f'\\"{key}\\"' in text, key


def test_no_iam_statement_grants_a_wildcard_action(templates: dict[str, Template]) -> None:
    for template in templates.values():
        for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for policy in template.find_resources(kind).values():
                for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                    assert "*" not in actions and not any(a.endswith(":*") for a in actions), statement


def test_dashboard_has_every_section_and_runtime_metric_names(template_of: Get) -> None:
    body = json.dumps(template_of("AgentFleetObservability").find_resources("AWS::CloudWatch::Dashboard"))
    for section in ("Ingest", "Agents", "Fleet", "Neuron", "Actions", "Cost"):
        assert f"## {section}" in body
    for name in (m.EVENTS_PROCESSED, m.DECISIONS, m.EVENTS_QUARANTINED, m.INFERENCE_LATENCY_MS, m.TOKENS_PER_SECOND,
                 m.BATCH_FILL_PERCENT, m.COMPILE_CACHE_HITS, m.NEURON_CORE_UTILIZATION, m.WORKERS_IN_SERVICE):
        assert name in body, name


def test_alarms_notify_the_encrypted_alarm_topic(template_of: Get) -> None:
    obs = template_of("AgentFleetObservability")
    alarms = obs.find_resources("AWS::CloudWatch::Alarm")
    descriptions = {a["Properties"]["AlarmDescription"] for a in alarms.values()}
    assert len(alarms) >= 5
    assert any("falling behind" in d for d in descriptions) and any("No instance in service" in d for d in descriptions)
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"], alarm
    for topic in obs.find_resources("AWS::SNS::Topic").values():
        assert "KmsMasterKeyId" in topic["Properties"]


def test_every_resource_carries_cost_tags(templates: dict[str, Template]) -> None:
    tagged = 0
    for template in templates.values():
        for resource in template.to_json()["Resources"].values():
            tags: Any = resource.get("Properties", {}).get("Tags")
            if isinstance(tags, list):
                keys = {t.get("Key") for t in tags if isinstance(t, dict)}
                assert {"Fleet", "CostCenter"} <= keys, resource["Type"]
                tagged += 1
    assert tagged > 10


def test_budget_alerts_the_alarm_topic_at_80_and_100_percent(template_of: Get) -> None:
    obs = template_of("AgentFleetObservability")
    obs.has_resource_properties("AWS::Budgets::Budget", {
        "Budget": Match.object_like({"BudgetLimit": {"Amount": 20000, "Unit": "USD"}, "TimeUnit": "MONTHLY",
                                     "CostFilters": {"TagKeyValue": ["user:Fleet$agentfleet"]}}),
        "NotificationsWithSubscribers": Match.array_with([
            Match.object_like({"Notification": Match.object_like({"Threshold": 80, "NotificationType": "ACTUAL"})}),
            Match.object_like({"Notification": Match.object_like({"Threshold": 100, "NotificationType": "ACTUAL"})}),
        ]),
    })
