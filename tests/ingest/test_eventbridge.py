"""EventBridge adapter against the services' published sample events."""

from __future__ import annotations

import json

import pytest

from agentfleet.ingest.adapters import decode, decode_named
from agentfleet.ingest.adapters.eventbridge import generic_type
from agentfleet.spec.events import Event, Rejection
from tests.ingest.samples import ARRIVAL, LIMIT, guardduty_event, sample, securityhub_asff_event


def _decode(data: bytes) -> Event | Rejection:
    result = decode(data, arrival_time=ARRIVAL, max_record_bytes=LIMIT)
    assert isinstance(result, (Event, Rejection))
    return result


@pytest.mark.parametrize(("name", "event_type", "subject", "time"), [
    ("eventbridge_cloudwatch_alarm_state_change.json", "cloudwatch.alarm", "ServerCpuTooHigh",
     "2019-10-02T17:04:40Z"),
    ("eventbridge_codebuild_build_state_change.json", "ci.succeeded", "my-sample-project", "2017-09-01T16:14:28Z"),
    ("eventbridge_codepipeline_execution_failed.json", "ci.failed", "myPipeline", "2020-01-31T18:55:43Z"),
    ("eventbridge_ecs_task_state_change.json", "ecs.task",
     "arn:aws:ecs:us-west-2:111122223333:task/FargateCluster/c13b4cb40f1f4fe4a2971f76ae5a47ad", "2020-01-23T17:57:58Z"),
    ("eventbridge_s3_object_created.json", "s3.object_created", "example-bucket/IMG_m7fzo3.jpg",
     "2023-03-08T17:50:14Z"),
    ("eventbridge_securityhub_findings_imported_v2_ocsf.json", "security.finding", "ASIA4U76YS3TEOA3O",
     "2025-07-22T03:03:15Z"),
    ("eventbridge_ec2_instance_state_change.json", "aws.ec2.ec2_instance_state_change_notification",
     "arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0", "2017-12-22T18:43:48Z"),
])
def test_published_samples(name: str, event_type: str, subject: str, time: str) -> None:
    data = sample(name)
    event = _decode(data)
    assert isinstance(event, Event), event
    original = json.loads(data)
    assert (event.type, event.subject, event.time) == (event_type, subject, time)
    assert (event.id, event.source, event.spec_version) == (original["id"], original["source"], "1.0")
    assert event.payload == original  # nothing of the service's event is lost
    assert decode_named(data, arrival_time=ARRIVAL, max_record_bytes=LIMIT)[0] == "eventbridge"


def test_guardduty_finding_subject_is_the_instance() -> None:
    event = _decode(guardduty_event())
    assert isinstance(event, Event), event
    assert (event.type, event.subject, event.source) == ("security.finding", "i-0d6c314027f74dc82", "aws.guardduty")
    assert event.payload["detail"]["type"] == "Recon:EC2/PortProbeUnprotectedPort"


def test_securityhub_asff_subject_is_the_resource() -> None:
    event = _decode(securityhub_asff_event())
    assert isinstance(event, Event), event
    assert event.type == "security.finding"
    assert event.subject == "arn:aws:cloudtrail:us-east-2:123456789012:trail/AWSMacieTrail-DO-NOT-EDIT"


@pytest.mark.parametrize(("status", "event_type"), [("FAILED", "ci.failed"), ("IN_PROGRESS", "ci.in_progress"),
                                                    ("STOPPED", "ci.stopped")])
def test_codebuild_states(status: str, event_type: str) -> None:
    doc = json.loads(sample("eventbridge_codebuild_build_state_change.json"))
    doc["detail"]["build-status"] = status
    event = _decode(json.dumps(doc).encode())
    assert isinstance(event, Event) and event.type == event_type


def test_subject_falls_back_to_the_account_without_resources() -> None:
    doc = json.loads(sample("eventbridge_ec2_instance_state_change.json"))
    doc["resources"] = []
    event = _decode(json.dumps(doc).encode())
    assert isinstance(event, Event) and event.subject == "111122223333"


def test_generic_type_for_custom_sources_and_long_names() -> None:
    assert generic_type("com.mycompany.orders", "Order Created") == "com_mycompany_orders.order_created"
    assert len(generic_type("aws.ec2", "x" * 300)) == 100


def test_event_without_detail_is_rejected() -> None:
    doc = json.loads(sample("eventbridge_cloudwatch_alarm_state_change.json"))
    del doc["detail"]
    rejection = _decode(json.dumps(doc).encode())
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "missing_field" and "detail" in rejection.detail
    assert rejection.event_id == "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92"


def test_event_with_a_bad_time_is_rejected() -> None:
    doc = json.loads(sample("eventbridge_s3_object_created.json"))
    doc["time"] = "yesterday"
    rejection = _decode(json.dumps(doc).encode())
    assert isinstance(rejection, Rejection) and rejection.reason == "missing_field" and "time" in rejection.detail
