"""GitHub webhooks in: a Lambda function URL handler that verifies the signature and writes one
CloudEvent per delivery to the stream.

Facts used (sources):
- GitHub docs, "Validating webhook deliveries" (github/docs content/webhooks/using-webhooks/
  validating-webhook-deliveries.md): X-Hub-Signature-256 = "sha256=" + HMAC-SHA256 hex digest of the
  raw body with the webhook secret as key; compare in constant time. Test vector: secret
  "It's a Secret to Everybody", body "Hello, World!" -> sha256=757107ea...8b043e17.
- GitHub docs, "Webhook events and payloads" / Delivery headers: X-GitHub-Event (event name),
  X-GitHub-Delivery (a GUID identifying the delivery). A "ping" event is sent when a hook is created.
- Lambda function URLs use the API Gateway HTTP API payload format 2.0 (Lambda Developer Guide,
  "Invoking Lambda function URLs"; sample: aws-powertools/powertools-lambda-python
  tests/events/lambdaFunctionUrlEvent.json): header names lower-cased, `body` a string,
  `isBase64Encoded` true when Lambda base64-encoded it, requestContext.timeEpoch in ms.
  The function returns {"statusCode", "headers", "body"}.

Lambda package: this module needs only agentfleet/{ops/logs.py, ops/aws.py} and boto3 (which the
Lambda Python runtime includes); it deliberately imports nothing that needs jsonschema.

Behaviour: a missing or wrong signature -> 401, logged as one structured line
("webhook rejected", metric=WebhookRejected) and never written to the stream; ping -> 200, not
written; otherwise PutRecords of one CloudEvent (partition key = subject = repository full name):
  type   push -> "code.push" (the kit's name for a code push; release-scribe subscribes to it);
         workflow_run with action "completed" -> ci.succeeded / ci.failed for conclusion
         success / failure; anything else -> "github.<event>[.<action>]"
  id     = X-GitHub-Delivery; source = https://github.com/<owner>/<repo>; time = request time;
  data   = the payload as GitHub sent it; extension attribute githubevent = X-GitHub-Event.
Idempotency: a delivery id already written by this handler instance is acknowledged (200) without
a second write. The memory is per warm Lambda instance and bounded (REMEMBERED_DELIVERIES): a
repeat that lands on another instance, after a cold start or after eviction is written again;
the stream consumer then sees the same event id twice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from botocore.config import Config

from agentfleet.ops import logs
from agentfleet.ops.aws import client

log = logs.get(__name__)
ENV_SECRET_ID = "AGENTFLEET_WEBHOOK_SECRET_ID"  # noqa: S105 - the variable's name; it holds a Secrets Manager name/ARN
ENV_STREAM_NAME = "AGENTFLEET_STREAM_NAME"  # same variable the workers read (spec.settings)
REMEMBERED_DELIVERIES = 10_000
REJECTED_METRIC = "WebhookRejected"  # lead: add to spec.metric_names and count it through ops.metrics
# workflow_run.conclusion enum: success, failure, neutral, cancelled, ... (octokit/webhooks @ 3a58428,
# payload-schemas/api.github.com/common/workflow-run.schema.json); only these two are CI verdicts.
_CI = {"success": "ci.succeeded", "failure": "ci.failed"}


def request_body(event: dict[str, Any]) -> bytes:
    """The raw request body bytes GitHub signed (function URLs base64-encode non-text bodies)."""
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    """True when `header` is "sha256=" + HMAC-SHA256(secret, body) hex; constant-time comparison."""
    if not header:
        return False
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("utf-8", "replace"))


def event_type(event_name: str, payload: dict[str, Any]) -> str:
    action = payload.get("action") if isinstance(payload.get("action"), str) else ""
    if event_name == "push":
        return "code.push"
    if event_name == "workflow_run" and action == "completed":
        conclusion = (payload.get("workflow_run") or {}).get("conclusion")
        if conclusion in _CI:
            return _CI[conclusion]
    return f"github.{event_name}" + (f".{action}" if action else "")


def to_cloudevent(event_name: str, delivery: str, payload: dict[str, Any], time_iso: str) -> dict[str, Any]:
    """One GitHub delivery as a CloudEvents 1.0 JSON object (read back by ingest.adapters.cloudevents)."""
    # Repository events carry repository.full_name; organisation-level ones only the org or sender.
    subject = (_field(payload, "repository", "full_name") or _field(payload, "organization", "login")
               or _field(payload, "sender", "login"))
    return {"specversion": "1.0", "id": delivery, "source": f"https://github.com/{subject}".rstrip("/"),
            "type": event_type(event_name, payload), "subject": subject or "github.com", "time": time_iso,
            "datacontenttype": "application/json", "githubevent": event_name, "data": payload}


def _field(payload: dict[str, Any], parent: str, name: str) -> str:
    node = payload.get(parent)
    value = node.get(name) if isinstance(node, dict) else None
    return value if isinstance(value, str) else ""


def _response(status: int, message: str) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"},
            "body": json.dumps({"message": message})}


class WebhookIngest:
    """Verifies and forwards GitHub deliveries; clients injected (boto3, moto or fakes)."""

    def __init__(self, *, secrets: Any, kinesis: Any, secret_id: str, stream_name: str,
                 remember: int = REMEMBERED_DELIVERIES) -> None:
        if not secret_id or not stream_name:
            raise ValueError(f"{ENV_SECRET_ID} and {ENV_STREAM_NAME} must both be set")
        self._secrets, self._kinesis = secrets, kinesis
        self.secret_id, self.stream_name, self._remember = secret_id, stream_name, remember
        self._secret: bytes | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.rejected = 0

    def secret(self) -> bytes:
        """Fetched once per instance; a rotated secret needs a new instance (e.g. a function update)."""
        if self._secret is None:
            value = self._secrets.get_secret_value(SecretId=self.secret_id)
            text = value.get("SecretString")
            self._secret = text.encode("utf-8") if text is not None else bytes(value["SecretBinary"])
        return self._secret

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
        try:
            body = request_body(event)
        except ValueError:
            return _response(400, "body is not valid base64")
        if not signature_ok(self.secret(), body, headers.get("x-hub-signature-256")):
            self.rejected += 1
            why = "missing" if not headers.get("x-hub-signature-256") else "mismatch"
            log.warning("webhook rejected", extra={"metric": REJECTED_METRIC, "reason": f"signature_{why}",
                                                   "delivery": headers.get("x-github-delivery", "")})
            return _response(401, "invalid signature")
        name, delivery = headers.get("x-github-event", ""), headers.get("x-github-delivery", "")
        if not name or not delivery:
            return _response(400, "X-GitHub-Event and X-GitHub-Delivery headers are required")
        if name == "ping":
            return _response(200, "pong")
        if delivery in self._seen:
            log.info("webhook duplicate delivery acknowledged", extra={"delivery": delivery, "event": name})
            return _response(200, "duplicate delivery, already written")
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _response(400, "body is not UTF-8 JSON")
        if not isinstance(payload, dict):
            return _response(400, "body must be a JSON object")
        millis = (event.get("requestContext") or {}).get("timeEpoch") or time.time() * 1000
        when = datetime.fromtimestamp(millis / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        record = to_cloudevent(name, delivery, payload, when)
        result = self._kinesis.put_records(StreamName=self.stream_name, Records=[
            {"Data": json.dumps(record, separators=(",", ":")).encode("utf-8"), "PartitionKey": record["subject"]}])
        if result.get("FailedRecordCount"):
            error = (result.get("Records") or [{}])[0]
            log.error("webhook put failed", extra={"delivery": delivery, "error": error.get("ErrorCode", "")})
            return _response(502, "could not write the event; redeliver later")
        self._seen[delivery] = None
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        log.info("webhook written", extra={"delivery": delivery, "event": name, "type": record["type"],
                                           "subject": record["subject"]})
        return _response(202, "accepted")


_INSTANCE: WebhookIngest | None = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (function URL, payload format 2.0); one WebhookIngest per warm instance."""
    global _INSTANCE
    if _INSTANCE is None:
        logs.configure()
        # The function times out after 10 s (constructs/sources.py) and GitHub waits 10 s for an answer:
        # few, short attempts, so a slow stream answers 502 (GitHub may redeliver) instead of timing out.
        quick = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=2, read_timeout=3)
        _INSTANCE = WebhookIngest(secrets=client("secretsmanager", config=quick), kinesis=client("kinesis", config=quick),
                                  secret_id=os.environ.get(ENV_SECRET_ID, ""),
                                  stream_name=os.environ.get(ENV_STREAM_NAME, ""))
    return _INSTANCE.handle(event)
