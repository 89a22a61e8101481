"""The `sources` section in the templates: EventBridge rules that match the services' published events
with a partition key path that keeps one subject on one shard, CloudWatch Logs subscriptions with their
role, and the GitHub webhook function whose package imports on its own."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template
from constructs.sources import WEBHOOK_FILES
from moto.events.models import EventPattern

from agentfleet.ingest.adapters.eventbridge import decode as decode_eventbridge
from agentfleet.ingest.adapters.eventbridge_services import RULES
from agentfleet.spec.events import Event
from agentfleet.spec.fleet import default_context
from agentfleet.spec.sources import PRESETS
from stacks.fleet_app import build
from tests.cdk.conftest import make_config
from tests.ingest.samples import guardduty_event, sample, securityhub_asff_event

ALL = {"eventbridge": list(PRESETS),
       "custom": [{"source": "my.app", "detail_type": "Order Placed", "partition_key_path": "$.detail.orderId"}],
       "log_groups": ["/aws/lambda/app", {"name": "/app/api", "filter_pattern": "ERROR"}],
       "github_webhook": {"enabled": True, "secret_name": "agentfleet/github-webhook", "reserved_concurrency": 7}}
# One published sample per preset rule (tests/data/events/SOURCES.md).
SAMPLES = {
    ("aws.cloudwatch", "CloudWatch Alarm State Change"): lambda: sample("eventbridge_cloudwatch_alarm_state_change.json"),
    ("aws.codebuild", "CodeBuild Build State Change"): lambda: sample("eventbridge_codebuild_build_state_change.json"),
    ("aws.codepipeline", "CodePipeline Pipeline Execution State Change"):
        lambda: sample("eventbridge_codepipeline_execution_failed.json"),
    ("aws.guardduty", "GuardDuty Finding"): guardduty_event,
    ("aws.securityhub", "Security Hub Findings - Imported"): securityhub_asff_event,
    ("aws.securityhub", "Findings Imported V2"): lambda: sample("eventbridge_securityhub_findings_imported_v2_ocsf.json"),
    ("aws.ecs", "ECS Task State Change"): lambda: sample("eventbridge_ecs_task_state_change.json"),
    ("aws.s3", "Object Created"): lambda: sample("eventbridge_s3_object_created.json"),
}


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> tuple[Template, Path]:
    """Every source on, synthesized with the cdk-nag gate (app.synth raises on any unacknowledged finding)."""
    outdir = tmp_path_factory.mktemp("cdk-sources")
    app = cdk.App(context={**default_context(), "sources": ALL}, outdir=str(outdir))
    build(app, make_config(sources=ALL))
    app.synth()
    return Template.from_json(json.loads((outdir / "AgentFleet.template.json").read_text())), outdir


def json_path(doc: Any, path: str) -> Any:
    """EventBridge's JSON path subset used by the presets: $.a.b-c[0].d (None when absent)."""
    node = doc
    for name, index in re.findall(r"\.([A-Za-z0-9_\-/]+)|\[(\d+)\]", path[1:]):
        if name:
            node = node.get(name) if isinstance(node, dict) else None
        else:
            node = node[int(index)] if isinstance(node, list) and len(node) > int(index) else None
    return node


def rule_targets(template: Template) -> dict[tuple[str, str], str]:
    found = {}
    for rule in template.find_resources("AWS::Events::Rule").values():
        pattern, [target] = rule["Properties"]["EventPattern"], rule["Properties"]["Targets"]
        [source], [detail_type] = pattern["source"], pattern["detail-type"]
        found[(source, detail_type)] = target["KinesisParameters"]["PartitionKeyPath"]
    return found


def test_presets_are_the_adapters_service_rules() -> None:
    presets = {(rule.source, rule.detail_type) for rules in PRESETS.values() for rule in rules}
    assert presets == set(RULES) == set(SAMPLES)


def test_default_rules_feed_the_default_agents(template_of: Any) -> None:
    fleet = template_of("AgentFleet")
    assert set(rule_targets(fleet)) == {key for name in ("alarms", "codebuild", "codepipeline", "guardduty",
                                                         "securityhub") for key in
                                        ((r.source, r.detail_type) for r in PRESETS[name])}
    fleet.has_resource_properties("AWS::Events::Rule", {
        "EventPattern": {"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"]},
        "State": "ENABLED",
        "Targets": [Match.object_like({"Arn": {"Fn::ImportValue": Match.string_like_regexp("IngestStream")},
                                       "KinesisParameters": {"PartitionKeyPath": "$.detail.alarmName"},
                                       "RoleArn": {"Fn::ImportValue": Match.string_like_regexp("EventsRole")}})]})
    subscribed = {t for a in make_config().agents for t in a.subscribes_to}
    assert {"ci.failed", "ci.succeeded", "cloudwatch.alarm", "security.finding"} <= subscribed
    fleet.resource_count_is("AWS::Lambda::Function", 0)
    fleet.resource_count_is("AWS::Logs::SubscriptionFilter", 0)
    # EventBridge's role (made under the stream) may write the stream and use its key, nothing else.
    template_of("AgentFleetState").has_resource_properties("AWS::IAM::Policy", {
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Action": ["kinesis:ListShards", "kinesis:PutRecord", "kinesis:PutRecords"]})])},
        "Roles": [{"Ref": Match.string_like_regexp("IngestStreamEventsRole")}]})


@pytest.mark.parametrize("key", list(SAMPLES), ids=lambda key: key[1])
def test_rule_matches_the_published_event_and_keys_it_by_subject(
        key: tuple[str, str], everything: tuple[Template, Path]) -> None:
    template, _ = everything
    [rule] = [r for r in template.find_resources("AWS::Events::Rule").values()
              if r["Properties"]["EventPattern"]["detail-type"] == [key[1]]]
    event = json.loads(SAMPLES[key]())
    assert EventPattern(None, rule["Properties"]["EventPattern"]).matches_event(event)
    partition_key = json_path(event, rule["Properties"]["Targets"][0]["KinesisParameters"]["PartitionKeyPath"])
    decoded = decode_eventbridge(event)
    assert isinstance(decoded, Event)
    assert isinstance(partition_key, str) and partition_key
    # The subject itself where one field holds it; else a field every event of that subject shares.
    coarser = {"GuardDuty Finding": ("detail", "accountId"), "Findings Imported V2": ("account",),
               "Object Created": ("detail", "bucket", "name")}
    if key[1] in coarser:
        field: Any = event
        for name in coarser[key[1]]:
            field = field[name]
        assert partition_key == field and partition_key != decoded.subject
    else:
        assert partition_key == decoded.subject


def test_custom_rule_and_log_subscriptions(everything: tuple[Template, Path]) -> None:
    template, _ = everything
    assert rule_targets(template)[("my.app", "Order Placed")] == "$.detail.orderId"
    for name, pattern in (("/aws/lambda/app", ""), ("/app/api", "ERROR")):
        template.has_resource_properties("AWS::Logs::SubscriptionFilter", {
            "LogGroupName": name, "FilterPattern": pattern, "Distribution": "ByLogStream",
            "DestinationArn": {"Fn::ImportValue": Match.string_like_regexp("IngestStream")},
            "RoleArn": {"Fn::GetAtt": [Match.string_like_regexp("SourcesLogsRole"), "Arn"]}})
    template.has_resource_properties("AWS::IAM::Role", {"AssumeRolePolicyDocument": {"Statement": [{
        "Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "logs.amazonaws.com"},
        "Condition": {"StringLike": {"aws:SourceArn": {"Fn::Join": ["", Match.array_with([":logs:"])]}}}}]}})
    template.has_resource_properties("AWS::IAM::Policy", {
        "PolicyDocument": {"Statement": Match.array_with([
            Match.object_like({"Action": ["kinesis:ListShards", "kinesis:PutRecord", "kinesis:PutRecords"]}),
            Match.object_like({"Action": Match.array_with(["kms:GenerateDataKey*"])})])},
        "Roles": [{"Ref": Match.string_like_regexp("SourcesLogsRole")}]})


def test_webhook_function_url_secret_and_logs(everything: tuple[Template, Path]) -> None:
    template, _ = everything
    template.has_resource_properties("AWS::Lambda::Function", {
        "Handler": "agentfleet.ingest.webhook.handler", "Runtime": "python3.14", "Timeout": 10,
        "ReservedConcurrentExecutions": 7,
        "Environment": {"Variables": {"AGENTFLEET_WEBHOOK_SECRET_ID": "agentfleet/github-webhook",
                                      "AGENTFLEET_STREAM_NAME": {"Fn::ImportValue": Match.string_like_regexp("IngestStream")}}},
        "LoggingConfig": {"LogGroup": {"Ref": Match.string_like_regexp("SourcesWebhookLogs")}}})
    template.has_resource_properties("AWS::Lambda::Url", {"AuthType": "NONE"})
    template.has_resource_properties("AWS::Logs::LogGroup", {
        "KmsKeyId": {"Fn::GetAtt": [Match.string_like_regexp("ActionsKey"), "Arn"]}, "RetentionInDays": 30})
    template.has_resource_properties("AWS::IAM::Policy", {
        "PolicyDocument": {"Statement": [  # exactly these: its own log group, its secret, the stream and its key
            Match.object_like({"Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                               "Resource": {"Fn::GetAtt": [Match.string_like_regexp("SourcesWebhookLogs"), "Arn"]}}),
            Match.object_like({"Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
                               "Resource": {"Fn::Join": ["", Match.array_with([":secret:agentfleet/github-webhook-??????"])]}}),
            Match.object_like({"Action": ["kinesis:ListShards", "kinesis:PutRecord", "kinesis:PutRecords"]}),
            Match.object_like({"Action": ["kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
                               "Resource": {"Fn::ImportValue": Match.string_like_regexp("IngestKey")}})]},
        "Roles": [{"Ref": Match.string_like_regexp("SourcesWebhookRole")}]})
    # No AWSLambdaBasicExecutionRole (its logs actions reach every log group): the role's only policy is the above.
    assert not [name for name in template.find_resources("AWS::IAM::Role", {"Properties": {
        "ManagedPolicyArns": Match.any_value()}}) if name.startswith("Sources")]
    template.has_output("GitHubWebhookUrl", {"Value": {"Fn::GetAtt": [Match.string_like_regexp("SourcesWebhookFunctionUrl"),
                                                                      "FunctionUrl"]}})


def test_webhook_package_holds_only_the_handler_and_imports_alone(everything: tuple[Template, Path]) -> None:
    template, outdir = everything
    [function] = template.find_resources("AWS::Lambda::Function").values()
    asset = outdir / ("asset." + function["Properties"]["Code"]["S3Key"].removesuffix(".zip"))
    files = sorted(str(p.relative_to(asset)) for p in asset.rglob("*") if p.is_file())
    assert files == sorted(WEBHOOK_FILES)
    # -I: no PYTHONPATH, no current directory; only the package and the interpreter's site-packages (boto3).
    probe = ("import json, sys; sys.path.insert(0, sys.argv[1]); import agentfleet.ingest.webhook as w; "
             "assert w.__file__.startswith(sys.argv[1]) and callable(w.handler); print(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-I", "-c", probe, str(asset)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = [m for m in json.loads(done.stdout) if m.startswith("agentfleet.")]
    assert loaded and all(m.split(".")[1] in ("ops", "ingest") for m in loaded)
