"""GitHub, played locally: deliveries signed and posted to the REAL webhook handler code.

A scenario line `{"github_webhook": {"event", "delivery", "time", "payload"}}` is a delivery as
GitHub would send it. `GitHubSim` holds the webhook secret in the emulator's Secrets Manager (as the
deployed function does), signs the body as GitHub does (X-Hub-Signature-256 = "sha256=" + HMAC-SHA256
hex of the raw body, GitHub docs "Validating webhook deliveries"), wraps it in a Lambda function URL
event (payload format 2.0, the shape of tests/data/events/lambda_function_url_event.json) and calls
agentfleet.ingest.webhook.WebhookIngest.handle with the emulator's clients: the handler verifies the
signature, reads the secret and writes the CloudEvent to the stream with its own partition key,
exactly as in AWS. Only the Lambda runtime around it is missing.

The handler runs with this process's credentials (the emulator's admin user): the webhook function's
own role is not in the templates yet, so its policy is not enforced here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets as token_source
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentfleet.ingest.webhook import WebhookIngest

SECRET_NAME = "agentfleet-local/github-webhook"  # noqa: S105 - a Secrets Manager name, not a secret
LINE_KEY = "github_webhook"  # the scenario line's only key


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery: X-GitHub-Event, X-GitHub-Delivery, when GitHub sent it, the JSON payload."""

    event: str
    delivery: str
    time: str  # ISO-8601; becomes requestContext.timeEpoch, which the handler stamps on the CloudEvent
    payload: dict[str, Any]

    @staticmethod
    def from_line(doc: dict[str, Any], where: str) -> Delivery:
        body = doc.get(LINE_KEY)
        if set(doc) != {LINE_KEY} or not isinstance(body, dict):
            raise ValueError(f"{where}: a webhook line is {{\"{LINE_KEY}\": {{event, delivery, time, payload}}}} "
                             "and nothing else")
        for name, kind in (("event", str), ("delivery", str), ("time", str), ("payload", dict)):
            if not isinstance(body.get(name), kind) or not body[name]:
                raise ValueError(f"{where}: {LINE_KEY}.{name} must be a non-empty {kind.__name__}")
        return Delivery(body["event"], body["delivery"], body["time"], body["payload"])

    def to_line(self) -> dict[str, Any]:
        return {LINE_KEY: {"event": self.event, "delivery": self.delivery, "time": self.time,
                           "payload": self.payload}}


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def function_url_event(delivery: Delivery, signature: str, body: bytes) -> dict[str, Any]:
    """A Lambda function URL request (payload format 2.0) as GitHub's POST arrives: lower-case headers."""
    millis = int(datetime.fromisoformat(delivery.time.replace("Z", "+00:00")).timestamp() * 1000)
    headers = {"content-type": "application/json", "user-agent": "GitHub-Hookshot/local",
               "x-github-event": delivery.event, "x-github-delivery": delivery.delivery,
               "x-hub-signature-256": signature}
    return {"version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "", "headers": headers,
            "requestContext": {"http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1"},
                               "routeKey": "$default", "stage": "$default", "timeEpoch": millis},
            "body": body.decode("utf-8"), "isBase64Encoded": False}


class _Recording:
    """Passes put_records through to the real client and keeps its answers (where each record went)."""

    def __init__(self, kinesis: Any) -> None:
        self._kinesis = kinesis
        self.results: list[tuple[dict[str, Any], str]] = []  # (PutRecords result entry, partition key)

    def put_records(self, **kwargs: Any) -> dict[str, Any]:
        response = self._kinesis.put_records(**kwargs)
        for entry, result in zip(kwargs["Records"], response["Records"], strict=True):
            self.results.append((result, entry["PartitionKey"]))
        return dict(response)


class GitHubSim:
    """Creates the webhook secret in the emulator and posts signed deliveries to the real handler."""

    def __init__(self, secretsmanager: Any, kinesis: Any, stream_name: str, secret_name: str = SECRET_NAME) -> None:
        self._secret = token_source.token_hex(32).encode("ascii")
        secretsmanager.create_secret(Name=secret_name, SecretString=self._secret.decode("ascii"))
        self._kinesis = _Recording(kinesis)
        self.handler = WebhookIngest(secrets=secretsmanager, kinesis=self._kinesis, secret_id=secret_name,
                                     stream_name=stream_name)
        self.statuses: dict[int, int] = {}

    def deliver(self, delivery: Delivery) -> list[tuple[str, str, str]]:
        """Post one delivery; the (shard id, sequence number, partition key) of what the handler wrote."""
        body = json.dumps(delivery.payload, separators=(",", ":")).encode("utf-8")
        before = len(self._kinesis.results)
        response = self.handler.handle(function_url_event(delivery, sign(self._secret, body), body))
        status = int(response["statusCode"])
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status >= 300:
            raise RuntimeError(f"webhook handler answered {status} for delivery {delivery.delivery}: {response['body']}")
        return [(r["ShardId"], r["SequenceNumber"], key) for r, key in self._kinesis.results[before:]
                if "SequenceNumber" in r]
