"""The instance role's policy covers every AWS call the runtime makes; the alarms and topics around it.

The runtime's calls are found in its source (AST), not listed by hand, so a new call that the
templates do not allow fails here before it fails on AWS as a swallowed AccessDenied.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from aws_cdk.assertions import Match, Template
from botocore import xform_name

from agentfleet.local import iam
from agentfleet.spec import metric_names as m
from tests.cdk.conftest import synth

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "agent_image" / "agentfleet"
# IAM's service prefix where it differs from the boto3 client name (Service Authorization Reference).
IAM_PREFIX = {"stepfunctions": "states", "cloudwatch": "cloudwatch"}
# Calls that are not API operations but make them. S3 API reference: HeadObject needs s3:GetObject;
# a multipart upload (upload_file above 8 MB) needs s3:PutObject, and s3:AbortMultipartUpload when
# boto3's transfer manager cleans up after a failed part.
HELPERS = {
    "download_file": ("s3", ["GetObject"]),
    "upload_file": ("s3", ["PutObject", "AbortMultipartUpload"]),
}


# Code in the package that never runs on an instance, so the instance role need not allow its calls.
NOT_ON_THE_INSTANCE = {
    "ingest/webhook.py": "the GitHub webhook handler runs in a Lambda function under that function's role",
    "entrypoints/requeue.py": "the requeue command is an operator tool, run with the operator's credentials",
    "entrypoints/fleetcheck.py": "the fleet check is an operator tool (README: its permissions), not a worker",
    "entrypoints/fleetcheck_aws.py": "the fleet check's AWS reads, run with the operator's credentials",
    "entrypoints/fleetcheck_events.py": "the fleet check's synthetic events, put with the operator's credentials",
    "entrypoints/fleetcheck_figures.py": "the fleet check's report math (no AWS calls)",
}


def runtime_calls() -> dict[str, set[str]]:
    """IAM action -> where the runtime (agentfleet minus local/, which is the laptop harness) calls it.

    A call counts when its method name is an operation of a service the runtime makes a client for
    (`client("svc")`), or a paginator named by a literal, or a transfer helper above."""
    files = [p for p in RUNTIME.rglob("*.py") if p.relative_to(RUNTIME).parts[0] != "local"
             and p.relative_to(RUNTIME).as_posix() not in NOT_ON_THE_INSTANCE]
    trees = {p: ast.parse(p.read_text(encoding="utf-8")) for p in files}
    services = {n.args[0].value for t in trees.values() for n in ast.walk(t) if isinstance(n, ast.Call)
                and getattr(n.func, "attr", getattr(n.func, "id", None)) == "client"
                and n.args and isinstance(n.args[0], ast.Constant)}
    session = botocore.session.get_session()
    ops = {s: {xform_name(o): o for o in session.get_service_model(s).operation_names} for s in services}
    found: dict[str, set[str]] = {}
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name = node.func.attr
            if name == "get_paginator" and node.args and isinstance(node.args[0], ast.Constant):
                name = str(node.args[0].value)
            hits = [(s, [ops[s][name]]) for s in ops if name in ops[s]]
            if name in HELPERS:
                hits.append(HELPERS[name])
            for service, operations in hits:
                for op in operations:
                    action = f"{IAM_PREFIX.get(service, service)}:{op}"
                    found.setdefault(action, set()).add(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


@pytest.fixture(scope="module")
def role_policies() -> list[iam.PolicyDoc]:
    """The instance role's policies, with the optional Hugging Face secret configured (its grant
    exists only then; the runtime reads the secret only then)."""
    stacks = synth(hf_token_secret_name="agentfleet/hf-token")
    return iam.worker_policies({name: t.to_json() for name, t in stacks.items()}).documents


def test_the_scan_finds_the_calls_the_runtime_is_known_to_make() -> None:
    calls = runtime_calls()
    for action in ("dynamodb:Scan", "dynamodb:PutItem", "kinesis:GetRecords", "kinesis:ListShards",
                   "states:StartExecution", "s3:GetObject", "s3:ListObjectsV2"):
        assert action in calls, f"the source scan lost {action}: {sorted(calls)}"


# Operation names whose IAM action is named differently (S3 API reference, "Permissions" of each).
ACTION_OF = {"s3:ListObjectsV2": "s3:ListBucket"}


def test_every_runtime_call_is_allowed_by_the_instance_role(role_policies: list[iam.PolicyDoc]) -> None:
    missing = {ACTION_OF.get(a, a): sorted(where) for a, where in runtime_calls().items()
               if not iam.allows(role_policies, ACTION_OF.get(a, a), resource=None)}
    assert not missing, f"calls the templates do not allow (AccessDenied on AWS): {missing}"


def test_a_call_outside_the_policy_is_reported(role_policies: list[iam.PolicyDoc]) -> None:
    # The evaluator the test above relies on must be able to say no.
    assert not iam.allows(role_policies, "dynamodb:DeleteTable", resource=None)
    assert not iam.allows(role_policies, "s3:DeleteObject", resource=None)
    assert iam.allows(role_policies, "dynamodb:Scan", resource=None)


def _arn_of(stack: Template, path_part: str, rtype: str | None = None) -> dict[str, Any]:
    """{"Fn::GetAtt": [logical id, "Arn"]} of the one resource (of `rtype`) whose logical id starts with path_part."""
    ids = [lid for lid, r in stack.to_json()["Resources"].items()
           if lid.startswith(path_part) and rtype in (None, r["Type"])]
    assert len(ids) == 1, ids
    return {"Fn::GetAtt": [ids[0], "Arn"]}


def test_scan_is_allowed_on_the_leases_table_only(template_of: Any) -> None:
    state = template_of("AgentFleetState")
    statements = [s for doc in iam.worker_policies({"s": state.to_json()} | _fleet(template_of)).documents
                  for s in doc.document["Statement"] if "dynamodb:Scan" in iam._as_list(s["Action"])]
    assert [s["Resource"] for s in statements] == [_arn_of(state, "AgentStateLeases", "AWS::DynamoDB::Table")]


def test_workers_may_only_put_objects_under_the_quarantine_prefix(template_of: Any) -> None:
    state = template_of("AgentFleetState")
    bucket = _arn_of(state, "AgentStateQuarantine", "AWS::S3::Bucket")
    state.has_resource_properties("AWS::IAM::ManagedPolicy", {"PolicyDocument": {"Statement": Match.array_with([
        {"Action": "s3:PutObject", "Effect": "Allow",
         "Resource": {"Fn::Join": ["", [bucket, "/quarantine/*"]]}}])}})
    state.has_resource_properties("AWS::S3::Bucket", {
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [Match.object_like({
            "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                              "KMSMasterKeyID": _arn_of(state, "AgentStateKey", "AWS::KMS::Key")}})]},
        "VersioningConfiguration": {"Status": "Enabled"}})


def test_the_runtime_config_names_the_quarantine_bucket(template_of: Any) -> None:
    document = template_of("AgentFleet").find_resources("AWS::SSM::Parameter")
    (value,) = [r["Properties"]["Value"] for r in document.values()]
    text = str(value)
    assert '"quarantine_bucket":"' in text and "AgentStateQuarantine" in text
    assert '"quarantine_prefix":"quarantine/"' in text


def test_put_metric_data_is_limited_to_the_fleet_namespace(template_of: Any) -> None:
    template_of("AgentFleet").has_resource_properties("AWS::IAM::Policy", {"PolicyDocument": {"Statement": Match.array_with([
        {"Action": "cloudwatch:PutMetricData", "Effect": "Allow", "Resource": "*",
         "Condition": {"StringEquals": {"cloudwatch:namespace": "AgentFleet"}}}])}})


def _fleet(template_of: Any) -> dict[str, dict[str, Any]]:
    return {"f": template_of("AgentFleet").to_json()}


# --- alarms, topics and keys ------------------------------------------------------------------

def emitted_dimensions() -> dict[str, set[frozenset[str]]]:
    """Metric name -> the dimension sets the runtime emits it with (Fleet always; plus the keyword
    dimensions of each metrics.count/observe/gauge call in the source)."""
    from agentfleet.spec import metric_names

    names = {k: v for k, v in vars(metric_names).items() if k.isupper() and isinstance(v, str)}
    found: dict[str, set[frozenset[str]]] = {}
    functions = [f for p in RUNTIME.rglob("*.py") for f in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
                 if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for function in functions:
        # `metrics.count(metric)` with `metric = metric_names.A if ... else metric_names.B` in the
        # same function: every metric_names constant the function names is a candidate.
        local_names = {n.attr for n in ast.walk(function) if isinstance(n, ast.Attribute) and n.attr in names
                       and isinstance(n.value, ast.Name) and n.value.id == "metric_names"}
        for node in ast.walk(function):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("count", "observe", "gauge") and node.args):
                continue
            first = node.args[0]
            if isinstance(first, ast.Attribute) and first.attr in names:
                metrics = {first.attr}
            elif isinstance(first, ast.Name):
                metrics = local_names
            else:
                continue
            dims = {metric_names.FLEET}
            for kw in node.keywords:
                if kw.arg:
                    dims.add(kw.arg)
                elif isinstance(kw.value, ast.Dict):
                    dims |= {names[k.attr] for k in kw.value.keys if isinstance(k, ast.Attribute)}
            for metric in metrics:
                found.setdefault(names[metric], set()).add(frozenset(dims))
    return found


# Metrics an alarm reads that this tree does not emit yet, with why (remove when they are emitted).
NOT_YET_EMITTED: dict[str, str] = {}  # metric -> why no runtime code emits it yet


def test_every_alarm_reads_a_metric_with_the_dimensions_the_runtime_emits(template_of: Any) -> None:
    emitted = emitted_dimensions()
    landed = set(NOT_YET_EMITTED) & set(emitted)
    assert not landed, f"{landed} are emitted now: remove them from NOT_YET_EMITTED so their dimensions are checked"
    alarms = template_of("AgentFleetObservability").find_resources("AWS::CloudWatch::Alarm")
    checked = 0
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        stats = [q["MetricStat"]["Metric"] for q in props.get("Metrics", []) if "MetricStat" in q]
        if "MetricName" in props:
            stats.append(props)
        for metric in stats:
            if metric.get("Namespace") != "AgentFleet" or metric["MetricName"] in NOT_YET_EMITTED:
                continue
            dims = frozenset(d["Name"] for d in metric.get("Dimensions", []))
            assert dims in emitted.get(metric["MetricName"], set()), (name, metric["MetricName"], dims, emitted)
            checked += 1
    assert checked >= len(m.QUARANTINE_REASONS) + 1  # the quarantine reasons and the compile-cache misses


def test_quarantine_alarm_adds_up_every_reason(template_of: Any) -> None:
    template_of("AgentFleetObservability").has_resource_properties("AWS::CloudWatch::Alarm", {
        "Metrics": Match.array_with([Match.object_like({
            "Expression": "SUM([" + ", ".join(f"q{i}" for i in range(len(m.QUARANTINE_REASONS))) + "])"})])})


def test_an_alarm_fires_when_the_stream_has_records_and_no_shard_is_leased(template_of: Any) -> None:
    template_of("AgentFleetObservability").has_resource_properties("AWS::CloudWatch::Alarm", {
        "ComparisonOperator": "GreaterThanOrEqualToThreshold", "Threshold": 1, "TreatMissingData": "notBreaching",
        "Metrics": Match.array_with([
            Match.object_like({"Expression": "IF(FILL(incoming, 0) > 0 AND FILL(leased, 0) == 0, 1, 0)"}),
            Match.object_like({"Id": "incoming", "MetricStat": Match.object_like({
                "Metric": Match.object_like({"MetricName": "IncomingRecords", "Namespace": "AWS/Kinesis"})})}),
            Match.object_like({"Id": "leased", "MetricStat": Match.object_like({"Stat": "Sum", "Metric": {
                "MetricName": "LeasedShards", "Namespace": "AgentFleet",
                "Dimensions": [{"Name": "Fleet", "Value": "agentfleet"}]}})})])})


def test_cloudwatch_alarms_may_publish_to_the_alarm_topic_from_this_account(template_of: Any) -> None:
    template_of("AgentFleetObservability").has_resource_properties("AWS::SNS::TopicPolicy", {
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Sid": "AllowCloudWatchAlarmsPublish", "Effect": "Allow", "Action": "sns:Publish",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Condition": {"StringEquals": {"aws:SourceAccount": Match.any_value()},
                          "ArnLike": {"aws:SourceArn": Match.any_value()}}})])}})


def test_service_principals_in_key_policies_carry_conditions(templates: dict[str, Template]) -> None:
    unconditioned = []
    for stack, template in templates.items():
        for lid, key in template.find_resources("AWS::KMS::Key").items():
            for statement in key["Properties"]["KeyPolicy"]["Statement"]:
                if "Service" in statement.get("Principal", {}) and not statement.get("Condition"):
                    unconditioned.append((stack, lid, statement["Principal"]["Service"]))
    assert not unconditioned, unconditioned


def test_approvers_get_a_managed_policy_for_task_tokens_only(template_of: Any) -> None:
    fleet = template_of("AgentFleet")
    fleet.has_resource_properties("AWS::IAM::ManagedPolicy", {"PolicyDocument": {"Statement": [{
        "Action": ["states:SendTaskFailure", "states:SendTaskHeartbeat", "states:SendTaskSuccess"],
        "Effect": "Allow", "Resource": {"Ref": Match.string_like_regexp("^ActionsStateMachine")}}]}})
    assert any(k.startswith("ApproverPolicyArn") for k in fleet.to_json()["Outputs"])


def test_every_log_group_is_kms_encrypted(templates: dict[str, Template]) -> None:
    plain = [(stack, lid) for stack, t in templates.items()
             for lid, group in t.find_resources("AWS::Logs::LogGroup").items() if "KmsKeyId" not in group["Properties"]]
    assert not plain, plain


def test_the_access_log_bucket_carries_its_checkov_suppression_with_a_reason(template_of: Any) -> None:
    buckets = template_of("AgentFleetState").find_resources("AWS::S3::Bucket")
    skips = {lid: b.get("Metadata", {}).get("checkov", {}).get("skip", []) for lid, b in buckets.items()}
    assert [lid for lid, s in skips.items() if s] == [lid for lid in buckets if lid.startswith("CompileCacheAccessLogs")]
    assert all(len(s["comment"]) >= 40 for skip in skips.values() for s in skip)
