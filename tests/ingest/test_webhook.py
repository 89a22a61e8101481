"""GitHub webhook handler: signature checks, base64 bodies, delivery-id idempotency, the record it
writes (read back from a moto Kinesis stream and decoded by the adapters)."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from agentfleet.ingest import webhook
from agentfleet.ingest.adapters import decode
from agentfleet.spec.events import Event
from tests.ingest.samples import ARRIVAL, LIMIT, sample

SECRET = "It's a Secret to Everybody"  # GitHub's documented test secret
STREAM = "webhook-test"


def test_github_documented_test_vector() -> None:
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert webhook.signature_ok(SECRET.encode(), b"Hello, World!", header)
    assert not webhook.signature_ok(SECRET.encode(), b"Hello, World?", header)
    assert not webhook.signature_ok(SECRET.encode(), b"Hello, World!", header.replace("sha256=", "sha1="))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        secrets, kinesis = boto3.client("secretsmanager"), boto3.client("kinesis")
        secrets.create_secret(Name="github-webhook", SecretString=SECRET)
        kinesis.create_stream(StreamName=STREAM, ShardCount=1)
        yield {"secrets": secrets, "kinesis": kinesis}


def _ingest(aws: dict[str, Any]) -> webhook.WebhookIngest:
    return webhook.WebhookIngest(secrets=aws["secrets"], kinesis=aws["kinesis"], secret_id="github-webhook",
                                 stream_name=STREAM)


def _request(body: bytes, *, secret: str = SECRET, event: str = "push", delivery: str = "d-1",
             signature: str | None = "compute", b64: bool = False) -> dict[str, Any]:
    """A function URL event (payload format 2.0) shaped like Powertools' captured sample."""
    request = json.loads(sample("lambda_function_url_event.json"))
    request["requestContext"]["http"]["method"] = "POST"
    request["headers"].update({"x-github-event": event, "x-github-delivery": delivery,
                               "content-type": "application/json"})
    if signature == "compute":
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if signature is not None:
        request["headers"]["x-hub-signature-256"] = signature
    request["body"] = base64.b64encode(body).decode() if b64 else body.decode()
    request["isBase64Encoded"] = b64
    return request


def _records(aws: dict[str, Any]) -> list[dict[str, Any]]:
    shard = aws["kinesis"].list_shards(StreamName=STREAM)["Shards"][0]["ShardId"]
    iterator = aws["kinesis"].get_shard_iterator(StreamName=STREAM, ShardId=shard,
                                                 ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return aws["kinesis"].get_records(ShardIterator=iterator)["Records"]


def test_valid_push_is_written_as_a_code_push_cloudevent(aws: dict[str, Any]) -> None:
    body = sample("github_push_payload.json")
    response = _ingest(aws).handle(_request(body))
    assert response["statusCode"] == 202
    [record] = _records(aws)
    assert record["PartitionKey"] == "Codertocat/Hello-World"
    event = decode(record["Data"], arrival_time=ARRIVAL, max_record_bytes=LIMIT)
    assert isinstance(event, Event), event
    assert (event.id, event.type, event.subject) == ("d-1", "code.push", "Codertocat/Hello-World")
    assert event.source == "https://github.com/Codertocat/Hello-World"
    assert event.time == "2022-08-05T08:14:39.885Z"  # requestContext.timeEpoch of the sample request
    assert event.payload["data"] == json.loads(body) and event.payload["githubevent"] == "push"


def test_base64_body_is_decoded_before_verifying(aws: dict[str, Any]) -> None:
    body = sample("github_pull_request_opened_payload.json")
    response = _ingest(aws).handle(_request(body, event="pull_request", b64=True))
    assert response["statusCode"] == 202
    event = decode(_records(aws)[0]["Data"], arrival_time=ARRIVAL, max_record_bytes=LIMIT)
    assert isinstance(event, Event) and event.type == "github.pull_request.opened"


@pytest.mark.parametrize("kind", ["missing", "invalid", "wrong_secret", "tampered"])
def test_bad_signature_is_401_counted_and_never_written(aws: dict[str, Any], kind: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    body = sample("github_push_payload.json")
    request = {"missing": lambda: _request(body, signature=None),
               "invalid": lambda: _request(body, signature="sha256=" + "0" * 64),
               "wrong_secret": lambda: _request(body, secret="not the secret"),
               "tampered": lambda: {**_request(body), "body": body.decode().replace("Codertocat", "Attacker")},
               }[kind]()
    ingest = _ingest(aws)
    with caplog.at_level(logging.WARNING, logger=webhook.__name__):
        response = ingest.handle(request)
    assert response["statusCode"] == 401
    assert ingest.rejected == 1
    assert [r.__dict__.get("metric") for r in caplog.records] == [webhook.REJECTED_METRIC]
    assert _records(aws) == []


def test_repeated_delivery_is_acknowledged_without_a_second_write(aws: dict[str, Any]) -> None:
    ingest, body = _ingest(aws), sample("github_push_payload.json")
    assert ingest.handle(_request(body, delivery="same"))["statusCode"] == 202
    again = ingest.handle(_request(body, delivery="same"))
    assert again["statusCode"] == 200 and "duplicate" in again["body"]
    assert ingest.handle(_request(body, delivery="other"))["statusCode"] == 202
    assert len(_records(aws)) == 2


def test_ping_is_acknowledged_and_not_written(aws: dict[str, Any]) -> None:
    response = _ingest(aws).handle(_request(b'{"zen": "Keep it logically awesome.", "hook_id": 1}', event="ping"))
    assert response["statusCode"] == 200 and _records(aws) == []


def test_secret_is_fetched_once(aws: dict[str, Any]) -> None:
    calls: list[str] = []
    real = aws["secrets"]

    class CountingSecrets:
        def get_secret_value(self, **kwargs: Any) -> Any:
            calls.append(kwargs["SecretId"])
            return real.get_secret_value(**kwargs)

    ingest = webhook.WebhookIngest(secrets=CountingSecrets(), kinesis=aws["kinesis"], secret_id="github-webhook",
                                   stream_name=STREAM)
    body = sample("github_push_payload.json")
    for delivery in ("a", "b", "c"):
        assert ingest.handle(_request(body, delivery=delivery))["statusCode"] == 202
    assert calls == ["github-webhook"]


def test_failed_put_is_502_and_the_delivery_is_not_remembered(aws: dict[str, Any]) -> None:
    class FailingKinesis:
        def __init__(self) -> None:
            self.calls = 0

        def put_records(self, **kwargs: Any) -> dict[str, Any]:
            self.calls += 1
            return {"FailedRecordCount": 1, "Records": [{"ErrorCode": "ProvisionedThroughputExceededException"}]}

    kinesis = FailingKinesis()
    ingest = webhook.WebhookIngest(secrets=aws["secrets"], kinesis=kinesis, secret_id="github-webhook",
                                   stream_name=STREAM)
    body = sample("github_push_payload.json")
    assert ingest.handle(_request(body))["statusCode"] == 502
    assert ingest.handle(_request(body))["statusCode"] == 502  # a redelivery is tried again
    assert kinesis.calls == 2


def test_published_workflow_run_completed_is_ci_succeeded(aws: dict[str, Any]) -> None:
    body = sample("github_workflow_run_completed_payload.json")
    assert _ingest(aws).handle(_request(body, event="workflow_run", delivery="w-1"))["statusCode"] == 202
    [record] = _records(aws)
    event = decode(record["Data"], arrival_time=ARRIVAL, max_record_bytes=LIMIT)
    assert isinstance(event, Event) and (event.type, event.subject) == ("ci.succeeded", "octo-org/octo-repo")


def test_workflow_run_conclusions_map_to_ci_types() -> None:
    payload = {"action": "completed", "workflow_run": {"conclusion": "failure"}, "repository": {"full_name": "o/r"}}
    assert webhook.event_type("workflow_run", payload) == "ci.failed"
    success = copy.deepcopy(payload)
    success["workflow_run"]["conclusion"] = "success"
    assert webhook.event_type("workflow_run", success) == "ci.succeeded"
    assert webhook.event_type("workflow_run", {"action": "requested"}) == "github.workflow_run.requested"
    assert webhook.event_type("check_run", {"action": "completed"}) == "github.check_run.completed"


def test_missing_configuration_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=webhook.ENV_SECRET_ID):
        webhook.WebhookIngest(secrets=None, kinesis=None, secret_id="", stream_name="s")


def test_handler_module_needs_no_jsonschema() -> None:
    """The Lambda asset carries the handler without the runtime's validation dependencies."""
    code = ("import sys; import agentfleet.ingest.webhook; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jsonschema', 'numpy', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
