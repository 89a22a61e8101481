"""Partition keys as the real producers set them (local/producers.py): CloudWatch Logs' key checked
against a record captured from a real subscription, EventBridge's rule path with its eventId default,
CloudEvents' subject."""

from __future__ import annotations

import base64
import gzip
import json

from agentfleet.local.producers import partition_key
from tests.ingest.samples import sample


def test_logs_key_matches_what_cloudwatch_logs_wrote() -> None:
    # aws-powertools' capture of a Kinesis stream fed by a Logs subscription (tests/data/events/SOURCES.md):
    # each record's partitionKey as Kinesis delivered it, next to the gzip bytes Logs wrote.
    captured = json.loads(sample("powertools_kinesis_stream_cloudwatch_logs_event.json"))["Records"]
    assert len(captured) == 2
    for record in captured:
        data = base64.b64decode(record["kinesis"]["data"])
        assert partition_key(data) == record["kinesis"]["partitionKey"]


def test_eventbridge_key_is_the_rule_path_else_the_event_id() -> None:
    alarm = json.loads(sample("eventbridge_cloudwatch_alarm_state_change.json"))
    assert partition_key(json.dumps(alarm).encode()) == "ServerCpuTooHigh"  # $.detail.alarmName
    s3 = json.loads(sample("eventbridge_s3_object_created.json"))
    assert partition_key(json.dumps(s3).encode()) == "example-bucket"  # $.detail.bucket.name
    generic = json.loads(sample("eventbridge_ec2_instance_state_change.json"))  # no preset: EventBridge's default
    assert partition_key(json.dumps(generic).encode()) == generic["id"]


def test_cloudevent_key_is_the_subject_else_the_source() -> None:
    event = json.loads(sample("cloudevents_json_object_data.json"))  # "subject": null
    assert partition_key(json.dumps(event).encode()) == "/mycontext"
    event["subject"] = "acme/payments-api"
    assert partition_key(json.dumps(event).encode()) == "acme/payments-api"


def test_unreadable_bytes_get_a_digest_not_an_error() -> None:
    for data in (b"{not json", gzip.compress(b"[1]"), b"\x1f\x8b\x00broken"):
        assert partition_key(data).startswith("unparsed-")
