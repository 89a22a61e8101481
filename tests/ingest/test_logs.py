"""CloudWatch Logs subscription records: real gzip bytes from a Kinesis stream, the documented
decoded shape, CONTROL_MESSAGE drops and broken gzip."""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from agentfleet.ingest.adapters import Dropped, decode, decode_named
from agentfleet.spec.events import Event, Rejection
from tests.ingest.samples import ARRIVAL, LIMIT, sample


def _kinesis_data() -> list[bytes]:
    """The Data of each record in Powertools' captured Kinesis event: gzip bytes as CloudWatch Logs wrote them."""
    records = json.loads(sample("powertools_kinesis_stream_cloudwatch_logs_event.json"))["Records"]
    return [base64.b64decode(r["kinesis"]["data"]) for r in records]


def test_real_gzip_records_become_one_event_per_batch() -> None:
    for data in _kinesis_data():
        assert data[:2] == b"\x1f\x8b"
        name, event = decode_named(data, arrival_time=ARRIVAL, max_record_bytes=LIMIT)
        assert name == "logs" and isinstance(event, Event), event
        batch = json.loads(gzip.decompress(data))
        assert event.type == "logs.batch" and event.source == "aws.logs"
        assert event.subject == "/aws/lambda/pt-1488-DummyLogDataFunction-gnWXPvL6jJyG"
        assert event.id == batch["logEvents"][0]["id"]
        assert event.payload == batch


def test_first_record_time_is_its_first_log_event() -> None:
    event = decode(_kinesis_data()[0], arrival_time=ARRIVAL, max_record_bytes=LIMIT)
    assert isinstance(event, Event) and event.time == "2022-11-10T15:10:27.015Z"  # 1668093027015 ms


def test_documented_shape_gzipped() -> None:
    data = gzip.compress(sample("logs_subscription_data_message.json"))
    event = decode(data, arrival_time=ARRIVAL, max_record_bytes=LIMIT)
    assert isinstance(event, Event), event
    assert (event.subject, event.time) == ("CloudTrail/logs", "2015-05-28T15:27:35.000Z")
    assert len(event.payload["logEvents"]) == 3


def test_control_message_is_dropped_not_quarantined() -> None:
    # Fields as the CloudWatch Logs guide describes them; no published CONTROL_MESSAGE sample exists.
    doc = json.loads(sample("logs_subscription_data_message.json"))
    doc["messageType"], doc["logEvents"] = "CONTROL_MESSAGE", []
    result = decode(gzip.compress(json.dumps(doc).encode()), arrival_time=ARRIVAL, max_record_bytes=LIMIT)
    assert isinstance(result, Dropped) and result.reason == "control_message"


@pytest.mark.parametrize(("data", "reason", "words"), [
    (_kinesis_data()[0][:-10], "invalid_json", "truncated"),
    (gzip.compress(b"START RequestId: not json"), "invalid_json", "not JSON"),
    (b"\x1f\x8b" + b"\x00" * 30, "invalid_json", "corrupt"),
    (gzip.compress(b"[1, 2]"), "invalid_json", "JSON object"),
])
def test_broken_gzip_is_rejected(data: bytes, reason: str, words: str) -> None:
    result = decode(data, arrival_time=ARRIVAL, max_record_bytes=LIMIT)
    assert isinstance(result, Rejection) and result.reason == reason and words in result.detail


def test_gzip_bomb_is_oversize() -> None:
    data = gzip.compress(b" " * (9 * 1024))  # inflates past 8 x the 1 KiB limit
    result = decode(data, arrival_time=ARRIVAL, max_record_bytes=1024)
    assert isinstance(result, Rejection) and result.reason == "oversize"


def test_data_message_without_log_events_is_rejected() -> None:
    doc = json.loads(sample("logs_subscription_data_message.json"))
    doc["logEvents"] = []
    result = decode(gzip.compress(json.dumps(doc).encode()), arrival_time=ARRIVAL, max_record_bytes=LIMIT)
    assert isinstance(result, Rejection) and result.reason == "missing_field" and "logEvents" in result.detail
