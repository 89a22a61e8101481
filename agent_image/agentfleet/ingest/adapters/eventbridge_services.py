"""Per-service rules for EventBridge events: (source, detail-type) -> (kit event type, subject).

Each rule reads only fields shown in the service's published sample event (tests/data/events,
sources in SOURCES.md there). A field a rule cannot find gives "" and the caller falls back to the
first resource ARN, then the account. The types are the ones the default agents subscribe to
(ci.failed, ci.succeeded, cloudwatch.alarm, security.finding), so real service events get decided.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentfleet.ingest.adapters.common import slug, text

Rule = Callable[[dict[str, Any], dict[str, Any]], tuple[str, str]]
_CI = {"SUCCEEDED": "ci.succeeded", "FAILED": "ci.failed"}


def ci_type(state: str) -> str:
    """FAILED -> ci.failed, SUCCEEDED -> ci.succeeded, any other state -> ci.<state lower>
    (IN_PROGRESS -> ci.in_progress, STOPPED -> ci.stopped, ...); no state -> ci.unknown."""
    return _CI.get(state) or f"ci.{slug(state) or 'unknown'}"


def alarm(_: dict[str, Any], detail: dict[str, Any]) -> tuple[str, str]:
    # CloudWatch User Guide, "Alarm events and EventBridge": detail.alarmName, detail.state.value
    return "cloudwatch.alarm", text(detail, "alarmName")


def codebuild(_: dict[str, Any], detail: dict[str, Any]) -> tuple[str, str]:
    # CodeBuild User Guide, "Build notifications input format reference": detail["build-status"]
    # is IN_PROGRESS | SUCCEEDED | FAILED | STOPPED; detail["project-name"]
    return ci_type(text(detail, "build-status")), text(detail, "project-name")


def codepipeline(_: dict[str, Any], detail: dict[str, Any]) -> tuple[str, str]:
    # CodePipeline User Guide, "Monitoring CodePipeline events": detail.pipeline, detail.state
    # (the guide's samples show STARTED, STOPPING, SUCCEEDED, FAILED). A pipeline run is CI to the
    # agents, so it shares the ci.* types with CodeBuild; payload.detail-type tells them apart.
    return ci_type(text(detail, "state")), text(detail, "pipeline")


def guardduty(_: dict[str, Any], detail: dict[str, Any]) -> tuple[str, str]:
    # GuardDuty Finding detail = the finding in the API's camelCase (GuardDuty API Reference,
    # "Finding": accountId, resource{resourceType, instanceDetails, accessKeyDetails, ...}).
    subject = (text(detail, "resource", "instanceDetails", "instanceId")
               or text(detail, "resource", "accessKeyDetails", "userName")
               or text(detail, "resource", "s3BucketDetails", 0, "name")
               or text(detail, "accountId"))
    return "security.finding", subject


def securityhub_asff(_: dict[str, Any], detail: dict[str, Any]) -> tuple[str, str]:
    # Security Hub "Findings - Imported": detail.findings holds one ASFF finding (Resources[].Id,
    # AwsAccountId; Security Hub User Guide, "EventBridge event formats" and "Sample control findings").
    finding = _first_finding(detail)
    return "security.finding", text(finding, "Resources", 0, "Id") or text(finding, "AwsAccountId")


def securityhub_ocsf(_: dict[str, Any], detail: dict[str, Any]) -> tuple[str, str]:
    # Security Hub "Findings Imported V2": detail.findings holds one OCSF finding (resources[].uid,
    # cloud.account.uid; Security Hub User Guide, "EventBridge event formats" for V2).
    finding = _first_finding(detail)
    return "security.finding", text(finding, "resources", 0, "uid") or text(finding, "cloud", "account", "uid")


def ecs_task(_: dict[str, Any], detail: dict[str, Any]) -> tuple[str, str]:
    # ECS Developer Guide, "Task state change events": detail.taskArn, lastStatus, desiredStatus.
    # One task's transitions stay ordered.
    return "ecs.task", text(detail, "taskArn")


def s3_object_created(_: dict[str, Any], detail: dict[str, Any]) -> tuple[str, str]:
    # S3 "Object Created" via EventBridge: detail.bucket.name, detail.object.key. Subject is
    # bucket/key (one object's events ordered); a key too long for the kit's 512-character subject
    # falls back to the bucket.
    bucket, key = text(detail, "bucket", "name"), text(detail, "object", "key")
    both = f"{bucket}/{key}"
    return "s3.object_created", both if bucket and key and len(both) <= 512 else bucket


def _first_finding(detail: dict[str, Any]) -> Any:
    findings = detail.get("findings")
    return findings[0] if isinstance(findings, list) and findings else {}


RULES: dict[tuple[str, str], Rule] = {
    ("aws.cloudwatch", "CloudWatch Alarm State Change"): alarm,
    ("aws.codebuild", "CodeBuild Build State Change"): codebuild,
    ("aws.codepipeline", "CodePipeline Pipeline Execution State Change"): codepipeline,
    ("aws.guardduty", "GuardDuty Finding"): guardduty,
    ("aws.securityhub", "Security Hub Findings - Imported"): securityhub_asff,
    ("aws.securityhub", "Findings Imported V2"): securityhub_ocsf,
    ("aws.ecs", "ECS Task State Change"): ecs_task,
    ("aws.s3", "Object Created"): s3_object_created,
}
