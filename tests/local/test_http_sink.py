"""The loopback sink answers as each played service documents, and records every request."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentfleet.local import http_sink
from agentfleet.local.sink_targets import Credentials

GOOD_KEY = "k" * 32


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[http_sink.HttpSink]:
    started = http_sink.start(tmp_path / "sink.jsonl", Credentials(github_tokens={"good"},
                                                                   jira_basic={"me@x.io:tok"}))
    yield started
    started.stop()


def post(sink: http_sink.HttpSink, path: str, body: Any, headers: dict[str, str] | None = None,
         method: str = "POST") -> tuple[int, Any]:
    request = urllib.request.Request(sink.url + path, data=json.dumps(body).encode(), method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def basic(pair: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def test_github_without_a_token_is_401(sink: http_sink.HttpSink) -> None:
    status, body = post(sink, "/repos/o/r/issues", {"title": "t"})
    assert (status, body["message"]) == (401, "Requires authentication")
    status, body = post(sink, "/repos/o/r/issues", {"title": "t"}, {"Authorization": "Bearer bad"})
    assert (status, body["message"]) == (401, "Bad credentials")


def test_github_without_a_title_is_422(sink: http_sink.HttpSink) -> None:
    status, body = post(sink, "/repos/o/r/issues", {"body": "b"}, {"Authorization": "token good"})
    assert status == 422
    assert body["message"] == "Validation Failed"
    assert body["errors"] == [{"resource": "Issue", "field": "title", "code": "missing_field"}]


def test_github_creates_numbered_issues(sink: http_sink.HttpSink) -> None:
    answers = [post(sink, "/repos/o/r/issues", {"title": f"t{i}"}, {"Authorization": "Bearer good"})
               for i in range(2)]
    assert [(s, b["number"], b["state"]) for s, b in answers] == [(201, 1, "open"), (201, 2, "open")]
    assert answers[1][1]["html_url"] == "https://github.com/o/r/issues/2"
    assert {"id", "url", "title", "labels"} <= set(answers[0][1])


def test_jira_needs_basic_auth_and_each_required_field(sink: http_sink.HttpSink) -> None:
    assert post(sink, "/rest/api/3/issue", {"fields": {}})[0] == 401
    assert post(sink, "/rest/api/3/issue", {"fields": {}}, basic("me@x.io:wrong"))[0] == 401
    status, body = post(sink, "/rest/api/3/issue", {"fields": {}}, basic("me@x.io:tok"))
    assert status == 400 and body["errorMessages"] == []
    assert set(body["errors"]) == {"project", "summary", "issuetype"}
    fields = {"project": {"key": "OPS"}, "summary": "s", "issuetype": {"name": "Bug"}}
    status, body = post(sink, "/rest/api/3/issue", {"fields": fields}, basic("me@x.io:tok"))
    assert status == 201 and body["key"] == "OPS-1" and set(body) == {"id", "key", "self"}


def test_jira_v3_wants_the_description_in_document_format_and_v2_takes_a_string(sink: http_sink.HttpSink) -> None:
    fields = {"project": {"key": "OPS"}, "summary": "s", "issuetype": {"name": "Task"}, "description": "plain"}
    status, body = post(sink, "/rest/api/3/issue", {"fields": fields}, basic("me@x.io:tok"))
    assert status == 400 and set(body["errors"]) == {"description"}
    status, body = post(sink, "/rest/api/2/issue", {"fields": fields}, basic("me@x.io:tok"))
    assert status == 201 and "/rest/api/2/issue/" in body["self"]


@pytest.mark.parametrize(("change", "error"), [
    ({"routing_key": "short"}, "Length of 'routing_key' is incorrect (should be 32 characters)"),
    ({"event_action": "page"}, "'event_action' is invalid (must be one of: trigger, acknowledge, resolve)"),
    ({"payload": {"summary": "s", "source": "h", "severity": "sev1"}},
     "'payload.severity' is invalid (must be one of: critical, error, warning, info)"),
    ({"payload": {"severity": "info", "source": "h"}}, "'payload.summary' is missing or blank"),
])
def test_pagerduty_rejects_an_invalid_event(sink: http_sink.HttpSink, change: dict[str, Any], error: str) -> None:
    event = {"routing_key": GOOD_KEY, "event_action": "trigger",
             "payload": {"summary": "s", "source": "h", "severity": "info"}, **change}
    status, body = post(sink, "/v2/enqueue", event)
    assert status == 400
    assert (body["status"], body["message"], body["errors"]) == ("invalid event", "Event object is invalid", [error])


def test_pagerduty_accepts_a_trigger_and_keeps_its_dedup_key(sink: http_sink.HttpSink) -> None:
    event = {"routing_key": GOOD_KEY, "event_action": "trigger", "dedup_key": "disk-1",
             "payload": {"summary": "s", "source": "h", "severity": "critical"}}
    assert post(sink, "/v2/enqueue", event) == (202, {"status": "success", "message": "Event processed",
                                                      "dedup_key": "disk-1"})
    assert sink.records("pagerduty")[-1]["body"]["routing_key"] == http_sink.fingerprint(GOOD_KEY)


def sns_notification(message: Any) -> dict[str, Any]:
    return {"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:1:notify",
            "Message": message if isinstance(message, str) else json.dumps(message)}


@pytest.mark.parametrize(("message", "reason"), [
    ({"version": "2.0", "source": "custom", "content": {"description": "d"}}, 'version must be "1.0"'),
    ({"version": "1.0", "source": "custom", "content": {"title": "t"}}, "content.description is required"),
    ({"version": "1.0", "source": "custom", "content": {"description": "d", "textType": "html"}},
     'content.textType must be "client-markdown"'),
    ({"version": "1.0", "source": "custom", "content": {"description": "d", "keywords": [1]}},
     "content.keywords must be a list of strings"),
    ("plain text", "message is not a JSON object"),
])
def test_slack_records_a_message_chatbot_would_not_render(sink: http_sink.HttpSink, message: Any,
                                                          reason: str) -> None:
    assert post(sink, "/chat/slack", sns_notification(message))[0] == 200  # SNS only needs a 2xx
    record = sink.records("slack")[-1]
    assert (record["accepted"], record["reason"]) == (False, reason)


def test_slack_accepts_a_custom_notification(sink: http_sink.HttpSink) -> None:
    message = {"version": "1.0", "source": "custom", "id": "e-1",
               "content": {"textType": "client-markdown", "title": "t", "description": "d", "nextSteps": ["a"]},
               "metadata": {"threadId": "x", "relatedResources": ["arn:x"], "additionalContext": {"k": "v"}}}
    post(sink, "/chat/slack", sns_notification(message))
    assert sink.records("slack")[-1]["accepted"] is True


def test_a_loopback_subscription_is_confirmed_and_others_are_not(sink: http_sink.HttpSink) -> None:
    confirm = {"Type": "SubscriptionConfirmation", "SubscribeURL": sink.url + "/hooks/confirm?token=t"}
    post(sink, "/chat/slack", confirm, {"x-amz-sns-message-type": "SubscriptionConfirmation"})
    post(sink, "/chat/slack", {**confirm, "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=x"})
    confirmations = [r for r in sink.records("slack") if r.get("kind") == "subscription"]
    assert [r["accepted"] for r in confirmations] == [True, False]
    assert sink.records("webhook")[-1]["path"] == "/hooks/confirm?token=t"  # the GET the sink made
    assert "slack" not in sink.deliveries_by_target()  # confirmations are not deliveries


def test_webhooks_unknown_routes_and_the_summary(sink: http_sink.HttpSink, tmp_path: Path) -> None:
    assert post(sink, "/hooks/deploy", {"x": 1}) == (200, {"ok": True})
    assert post(sink, "/nowhere", {})[0] == 404
    post(sink, "/repos/o/r/issues", {"title": "t"}, {"Authorization": "Bearer good"})
    post(sink, "/repos/o/r/issues", {"title": "t"})
    assert sink.deliveries_by_target() == {"webhook": {"accepted": 1, "rejected": 0},
                                           "unknown": {"accepted": 0, "rejected": 1},
                                           "github": {"accepted": 1, "rejected": 1}}
    lines = [json.loads(line) for line in (tmp_path / "sink.jsonl").read_text().splitlines()]
    assert len(lines) == 4
    assert lines[2]["headers"]["authorization"] == http_sink.fingerprint("Bearer good")
    assert "good" not in (tmp_path / "sink.jsonl").read_text().replace("sha256:", "")
