"""The `sources` scenario and the scenario line forms: the shipped file is what the generator writes,
every wire format is in it, binary lines decode, GitHub deliveries go through the real webhook
handler (signature verified with the secret in Secrets Manager) onto a moto stream."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from agentfleet.ingest.adapters import Dropped, decode_named
from agentfleet.local import github_sim, replay, scenarios
from agentfleet.local.records import read_stream
from agentfleet.local.scenario_sources import mixed_day
from agentfleet.spec.events import Event

STREAM = "mixed-test"


@pytest.mark.parametrize("name", sorted(scenarios.GENERATORS))
def test_shipped_files_are_what_the_generators_write(name: str) -> None:
    shipped = (scenarios.SCENARIO_DIR / f"{name}.jsonl").read_bytes()
    assert shipped == b"\n".join(scenarios.GENERATORS[name]()) + b"\n"
    assert scenarios.GENERATORS["sources"] is mixed_day


def test_kit_envelope_records_keep_their_subject_as_key() -> None:
    for record in scenarios.load("ci-day"):
        assert record.partition_key == json.loads(record.data)["subject"]


def test_sources_mixes_every_wire_format() -> None:
    records = scenarios.load("sources")
    webhooks = Counter(r.webhook.event for r in records if r.webhook)
    assert set(webhooks) == {"push", "workflow_run", "pull_request"}
    decoded = [decode_named(r.data, arrival_time="2025-03-11T06:00:00Z", max_record_bytes=1 << 20)
               for r in records if not r.webhook]
    adapters = Counter(name for name, _ in decoded)
    assert set(adapters) == {"cloudevents", "eventbridge", "logs"}
    assert sum(isinstance(d, Dropped) for _, d in decoded) == 2  # the CONTROL_MESSAGE health checks
    types = {d.type for _, d in decoded if isinstance(d, Event)}
    assert {"cloudwatch.alarm", "security.finding", "ci.failed", "ci.succeeded", "ecs.task", "s3.object_created",
            "logs.batch"} <= types
    assert not [d for _, d in decoded if not isinstance(d, Event | Dropped)]  # nothing malformed by accident


@pytest.mark.parametrize(("line", "words"), [
    (b'{"data_base64": "%%%", "partition_key": "k"}', "not base64"),
    (b'{"data_base64": "AAAA", "partition_key": ""}', "partition_key"),
    (b'{"github_webhook": {"event": "push", "delivery": "d", "time": "2025-01-01T00:00:00Z"}}', "payload"),
    (b'{"github_webhook": {"event": "push", "delivery": "d", "time": "t", "payload": {"a": 1}}, "x": 1}',
     "nothing else"),
])
def test_a_bad_special_line_is_refused_with_its_place(line: bytes, words: str) -> None:
    with pytest.raises(ValueError, match=words) as info:
        scenarios.parse_line(line, "s.jsonl:3")
    assert "s.jsonl:3" in str(info.value)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        kinesis = boto3.client("kinesis")
        kinesis.create_stream(StreamName=STREAM, ShardCount=2)
        yield {"kinesis": kinesis, "secrets": boto3.client("secretsmanager")}


def test_replay_sends_each_form_as_its_producer_would(aws: dict[str, Any]) -> None:
    records = scenarios.load("sources", limit=40)
    github = github_sim.GitHubSim(aws["secrets"], aws["kinesis"], STREAM)
    sent = replay.put_all(aws["kinesis"], STREAM, records, github=github)
    assert len(sent) == len(records) and github.statuses == {202: sum(1 for r in records if r.webhook)}
    back = {(r.shard_id, r.sequence_number): r for r in read_stream(aws["kinesis"], STREAM)}
    for record, where in zip(records, sent, strict=True):
        data = back[(where.shard_id, where.sequence_number)].data
        if record.webhook is None:
            assert data == record.data and where.partition_key == record.partition_key
            assert where.dropped == isinstance(decode_named(data, arrival_time="2025-03-11T06:00:00Z",
                                                            max_record_bytes=1 << 20)[1], Dropped)
        else:  # the handler wrote a CloudEvent keyed by the repository, with the delivery id as event id
            event = json.loads(data)
            assert (event["id"], event["githubevent"]) == (record.webhook.delivery, record.webhook.event)
            assert where.partition_key == event["subject"] == record.webhook.payload["repository"]["full_name"]


def test_the_handler_really_checks_the_signature(aws: dict[str, Any]) -> None:
    github = github_sim.GitHubSim(aws["secrets"], aws["kinesis"], STREAM)
    delivery = next(r.webhook for r in scenarios.load("sources") if r.webhook)
    assert delivery is not None
    github._secret = b"not the secret in Secrets Manager"
    with pytest.raises(RuntimeError, match="401"):
        github.deliver(delivery)
    assert read_stream(aws["kinesis"], STREAM) == []
