"""A loopback HTTP server that plays the fleet's action targets and records what they received.

Routes (answers copied from each service's documentation, see sink_targets):
  POST /repos/{owner}/{repo}/issues   GitHub "Create an issue"
  POST /rest/api/{2,3}/issue          Jira Cloud "Create issue" (v3: description in ADF)
  POST /v2/enqueue                    PagerDuty Events API v2
  POST /chat/slack                    an SNS HTTP subscription standing in for a Slack channel of Amazon Q
                                      Developer in chat applications (AWS Chatbot): each Notification's
                                      Message must be a custom notification, else it is recorded rejected
  POST /hooks/{name}                  a generic webhook: 200, recorded (GET too, for a loopback SubscribeURL)
Anything else answers 404 and is recorded rejected.

SNS: moto 5.2.5 delivers to http(s) subscriptions synchronously during Publish, as a JSON body with
Content-Type text/plain, and confirms http subscriptions itself without sending a SubscriptionConfirmation
(moto/sns/models.py Subscription.publish and SNSBackend.subscribe). AWS does send one ("Subscribe your
HTTP/S endpoint", docs.aws.amazon.com/sns/latest/dg/SendMessageToHttp.prepare.html); the sink confirms
it by fetching SubscribeURL, but only on loopback (no other network here).

Every request is recorded (target, path, status, accepted, reason, headers and body with secrets
replaced by a sha256 fingerprint) in memory and, when given a path, as JSONL.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agentfleet.local.sink_targets import ROUTES, Credentials, Verdict, chatbot_problems

SECRET_HEADERS = ("authorization", "x-api-key", "api-key", "x-auth-token", "cookie")
SECRET_FIELDS = ("routing_key",)  # PagerDuty's integration key travels in the JSON body
SLACK_PATH = "/chat/slack"
_HOOK = re.compile(r"^/hooks/(?P<name>[A-Za-z0-9_.-]+)$")


def fingerprint(value: str) -> str:
    """How a secret header is recorded: tests compare it with the credential they expect."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


class HttpSink:
    """The running sink: `url`, `records()`, `deliveries_by_target()`, `stop()`."""

    def __init__(self, jsonl: Path | None = None, credentials: Credentials | None = None, port: int = 0) -> None:
        self.credentials = credentials or Credentials()
        self.jsonl = jsonl
        if jsonl is not None:
            jsonl.write_text("", encoding="utf-8")  # this run's requests only
        self._records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-sink", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def records(self, target: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._records if target is None or r["target"] == target]

    def deliveries_by_target(self) -> dict[str, dict[str, int]]:
        """{"github": {"accepted": n, "rejected": m}, ...} (SNS subscription confirmations not counted)."""
        out: dict[str, dict[str, int]] = {}
        for record in self.records():
            if record.get("kind") == "subscription":
                continue
            counts = out.setdefault(record["target"], {"accepted": 0, "rejected": 0})
            counts["accepted" if record["accepted"] else "rejected"] += 1
        return out

    def _next_number(self, target: str) -> int:
        with self._lock:
            return 1 + sum(1 for r in self._records if r["target"] == target and r["accepted"])

    def _record(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._records.append(record)
            if self.jsonl is not None:
                with open(self.jsonl, "a", encoding="utf-8") as out:
                    out.write(json.dumps(record, default=str) + "\n")

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Verdict:
        """Route one request and record it; returns the answer to send."""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        route = urlsplit(path).path
        verdict = self._answer(method, route, headers, body)
        self._record({"time": time.time(), "target": verdict.target, "method": method, "path": path,
                      "status": verdict.status, "accepted": verdict.accepted, "reason": verdict.reason,
                      "headers": {k: fingerprint(v) if k in SECRET_HEADERS else v for k, v in headers.items()},
                      "body": _without_secrets(body), **verdict.extra})
        return verdict

    def _answer(self, method: str, route: str, headers: dict[str, str], body: Any) -> Verdict:
        if route == SLACK_PATH:
            return self._slack(method, headers, body)
        hook = _HOOK.match(route)
        if hook and method in ("POST", "GET"):  # GET too: a loopback SubscribeURL can point here
            return Verdict("webhook", 200, {"ok": True}, True, extra={"hook": hook.group("name")})
        for pattern, target, handler in ROUTES:
            match = pattern.match(route)
            if match and method == "POST":
                return handler(match, headers, body, self.credentials, self._next_number(target))
        return Verdict("unknown", 404, {"message": "Not Found"}, False, f"no route for {method} {route}")

    def _slack(self, method: str, headers: dict[str, str], envelope: Any) -> Verdict:
        if method != "POST" or not isinstance(envelope, dict):
            return Verdict("slack", 400, {"message": "not an SNS message"}, False, "not an SNS message")
        kind = headers.get("x-amz-sns-message-type") or envelope.get("Type")
        if kind == "SubscriptionConfirmation":
            return self._confirm(str(envelope.get("SubscribeURL", "")))
        if kind != "Notification":
            return Verdict("slack", 400, {"message": f"unexpected SNS message type {kind!r}"}, False,
                           f"SNS message type {kind!r}")
        try:
            message = json.loads(envelope.get("Message", ""))
        except (TypeError, ValueError):
            message = envelope.get("Message")
        problems = chatbot_problems(message)
        # SNS only needs a 2xx; a message the chat service cannot render is dropped there, so it is
        # recorded as rejected with the reason rather than answered with an error.
        return Verdict("slack", 200, {"ok": True}, not problems, "; ".join(problems),
                       extra={"message_id": envelope.get("MessageId"), "kind": "notification"})

    def _confirm(self, url: str) -> Verdict:
        host = urlsplit(url).hostname
        if host not in ("127.0.0.1", "localhost"):
            return Verdict("slack", 200, {"ok": True}, False, f"SubscribeURL {url!r} is not on loopback",
                           extra={"kind": "subscription"})
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback only, checked above
                ok = answer.status // 100 == 2
        except OSError:  # HTTPError (non-2xx) included
            ok = False
        return Verdict("slack", 200, {"ok": True}, ok, "" if ok else "SubscribeURL refused",
                       extra={"kind": "subscription"})


def _without_secrets(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: fingerprint(str(v)) if k in SECRET_FIELDS else v for k, v in body.items()}
    return body


def _handler_for(sink: HttpSink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            verdict = sink.handle(self.command, self.path, headers, raw)
            data = json.dumps(verdict.body).encode()
            self.send_response(verdict.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # every request is recorded instead

    return Handler


def start(jsonl: Path | None = None, credentials: Credentials | None = None, port: int = 0) -> HttpSink:
    """Start the sink on loopback: a free port by default, or `port` (e.g. one the templates were
    synthesized with, so the role's states:HTTPEndpoint condition names the sink)."""
    return HttpSink(jsonl, credentials, port)


def subscribe_slack(sns: Any, topic_arn: str, sink: HttpSink) -> str:
    """Subscribe the sink's Slack endpoint to an SNS topic (the notify topic); returns the subscription ARN."""
    answer = sns.subscribe(TopicArn=topic_arn, Protocol="http", Endpoint=sink.url + SLACK_PATH,
                           ReturnSubscriptionArn=True)
    return str(answer["SubscriptionArn"])
