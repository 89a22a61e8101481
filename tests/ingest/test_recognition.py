"""CloudEvents 1.0, the kit envelope, and the recognition order for everything else."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from agentfleet.ingest.adapters import UNKNOWN_SHAPE, arrival_iso, decode, decode_named
from agentfleet.spec.events import Event, Rejection, parse_record
from tests.ingest.samples import ARRIVAL, LIMIT, sample


def _decode(data: bytes) -> Event | Rejection:
    result = decode(data, arrival_time=ARRIVAL, max_record_bytes=LIMIT)
    assert isinstance(result, (Event, Rejection))
    return result


def test_cloudevent_published_example_null_subject_falls_back_to_source() -> None:
    data = sample("cloudevents_json_object_data.json")
    name, event = decode_named(data, arrival_time=ARRIVAL, max_record_bytes=LIMIT)
    assert name == "cloudevents" and isinstance(event, Event), event
    assert (event.id, event.type, event.source) == ("C234-1234-1234", "com.example.someevent", "/mycontext")
    assert (event.subject, event.time) == ("/mycontext", "2018-04-05T17:31:00Z")
    assert event.payload["data"] == {"appinfoA": "abc", "appinfoB": 123, "appinfoC": True}
    assert event.payload["comexampleextension1"] == "value"  # extension attributes are kept


def test_cloudevent_binary_data_is_carried_as_sent() -> None:
    event = _decode(sample("cloudevents_binary_data.json"))
    assert isinstance(event, Event) and event.payload["data_base64"] == "... base64 encoded string ..."


def test_cloudevent_subject_and_missing_time() -> None:
    doc = json.loads(sample("cloudevents_json_object_data.json"))
    doc["subject"] = "orders/42"
    del doc["time"]
    event = _decode(json.dumps(doc).encode())
    assert isinstance(event, Event) and (event.subject, event.time) == ("orders/42", ARRIVAL)


@pytest.mark.parametrize(("change", "reason", "words"), [
    ({"type": None}, "missing_field", "'type'"),
    ({"id": ""}, "missing_field", "'id'"),
    ({"specversion": "0.3"}, "unknown_version", "0.3"),
    ({"data_base64": "AAAA"}, "missing_field", "mutually exclusive"),
    ({"type": "Com.Example Upper"}, "missing_field", "type"),
])
def test_broken_cloudevents_are_rejected(change: dict[str, object], reason: str, words: str) -> None:
    doc = json.loads(sample("cloudevents_json_object_data.json"))
    doc.update(change)
    doc = {k: v for k, v in doc.items() if v is not None}
    result = _decode(json.dumps(doc).encode())
    assert isinstance(result, Rejection) and result.reason == reason and words in result.detail


def test_kit_envelope_reads_exactly_as_parse_record() -> None:
    record = {"spec_version": "1.0", "id": "e1", "type": "ci.failed", "subject": "svc", "time": ARRIVAL,
              "source": "ci", "payload": {"build": 7}}
    data = json.dumps(record).encode()
    name, event = decode_named(data, arrival_time=ARRIVAL, max_record_bytes=LIMIT)
    assert name == "kit" and event == parse_record(data, LIMIT)
    bad = json.dumps({**record, "spec_version": "9.9"}).encode()
    assert decode(bad, arrival_time=ARRIVAL, max_record_bytes=LIMIT) == parse_record(bad, LIMIT)


def test_adapter_events_round_trip_through_the_kit_envelope() -> None:
    event = _decode(sample("eventbridge_cloudwatch_alarm_state_change.json"))
    assert isinstance(event, Event)
    assert parse_record(json.dumps(event.to_json()).encode(), LIMIT) == event


@pytest.mark.parametrize(("data", "reason"), [
    (json.dumps({"hello": "world", "id": "x"}).encode(), UNKNOWN_SHAPE),
    (b"\xff\xfe", "invalid_json"),
    (b"not json", "invalid_json"),
    (b"[]", "invalid_json"),
    (b"{" + b" " * LIMIT + b"}", "oversize"),
])
def test_unrecognised_records(data: bytes, reason: str) -> None:
    result = _decode(data)
    assert isinstance(result, Rejection) and result.reason == reason


def test_github_payload_outside_a_cloudevent_is_unknown_shape() -> None:
    result = _decode(sample("github_push_payload.json"))
    assert isinstance(result, Rejection) and result.reason == UNKNOWN_SHAPE and "after" in result.detail


def test_arrival_time_from_kinesis_timestamps() -> None:
    # boto3 returns ApproximateArrivalTimestamp as an aware datetime; Lambda events carry epoch seconds
    # (Powertools' kinesisStreamCloudWatchLogsEvent.json: 1668093033.744).
    local = datetime(2022, 11, 10, 17, 10, 33, 744000, tzinfo=timezone(timedelta(hours=2)))
    assert arrival_iso(local) == "2022-11-10T15:10:33.744Z"
    assert arrival_iso(1668093033.744) == "2022-11-10T15:10:33.744Z"
