"""Step Functions HTTP Tasks run in the IAM-enforced emulator and reach the loopback sink: one test per
target kind, the documented failures, and refusals of a role missing a documented permission.
Helpers and fixtures: tests/local/http_task_helpers.py."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from agentfleet.local import http_sink
from agentfleet.local.emulator import Emulator
from tests.local import http_task_helpers
from tests.local.http_task_helpers import (
    GITHUB_TOKEN,
    JIRA_TOKEN,
    JIRA_USER,
    ROUTING_KEY,
    connection,
    execute,
    github_setup,
    role_statements,
    run,
    run_as,
)

pytestmark = pytest.mark.integration
sink, aws = http_task_helpers.sink, http_task_helpers.aws  # the fixtures these tests use


def test_a_github_issue_is_created_with_the_connections_token(iam_emulator: Emulator, aws: Any,
                                                               sink: http_sink.HttpSink) -> None:
    conn = github_setup(iam_emulator, aws, sink)
    before = len(sink.records("github"))
    done = execute(aws, {"ApiEndpoint": sink.url + "/repos/acme/shop/issues", "Method": "POST",
                         "Authentication": {"ConnectionArn": conn["ConnectionArn"]},
                         "Headers": {"Accept": "application/vnd.github+json"},
                         "RequestBody": {"title.$": "$.title", "labels": ["agent"]}}, {"title": "CI is red"})
    assert done["status"] == "SUCCEEDED", (done.get("error"), done.get("cause"))
    output = json.loads(done["output"])
    assert output["StatusCode"] == 201 and output["StatusText"] == "Created"
    assert output["ResponseBody"]["html_url"].startswith("https://github.com/acme/shop/issues/")
    seen = sink.records("github")[before:]
    assert len(seen) == 1 and seen[0]["body"] == {"title": "CI is red", "labels": ["agent"]}
    assert seen[0]["headers"]["authorization"] == http_sink.fingerprint(f"Bearer {GITHUB_TOKEN}")
    assert seen[0]["headers"]["accept"] == "application/vnd.github+json"


def test_github_refusals_fail_the_state_with_the_status(iam_emulator: Emulator, aws: Any,
                                                        sink: http_sink.HttpSink) -> None:
    wrong = github_setup(iam_emulator, aws, sink, token="ghp_wrong")
    params = {"ApiEndpoint": sink.url + "/repos/acme/shop/issues", "Method": "POST", "RequestBody": {"title": "x"}}
    done = execute(aws, {**params, "Authentication": {"ConnectionArn": wrong["ConnectionArn"]}})
    assert (done["status"], done.get("error")) == ("FAILED", "States.Http.StatusCode.401")
    assert json.loads(done["cause"])["message"] == "Bad credentials"
    right = github_setup(iam_emulator, aws, sink)
    done = execute(aws, {**params, "RequestBody": {"body": "no title"},
                         "Authentication": {"ConnectionArn": right["ConnectionArn"]}})
    assert (done["status"], done.get("error")) == ("FAILED", "States.Http.StatusCode.422")
    assert json.loads(done["cause"])["errors"][0] == {"resource": "Issue", "field": "title", "code": "missing_field"}


def test_a_jira_issue_uses_the_connections_basic_credentials(iam_emulator: Emulator, aws: Any,
                                                             sink: http_sink.HttpSink) -> None:
    conn = connection(aws, "BASIC", {"BasicAuthParameters": {"Username": JIRA_USER, "Password": JIRA_TOKEN}})
    run_as(iam_emulator, aws, role_statements(conn, sink.url))
    fields = {"project": {"key": "OPS"}, "summary": "Disk full", "issuetype": {"name": "Task"}}
    base = {"ApiEndpoint": sink.url + "/rest/api/3/issue", "Method": "POST",
            "Authentication": {"ConnectionArn": conn["ConnectionArn"]}}
    done = execute(aws, {**base, "RequestBody": {"fields": fields}})
    assert done["status"] == "SUCCEEDED", (done.get("error"), done.get("cause"))
    assert json.loads(done["output"])["ResponseBody"]["key"].startswith("OPS-")
    basic = "Basic " + base64.b64encode(f"{JIRA_USER}:{JIRA_TOKEN}".encode()).decode()
    assert sink.records("jira")[-1]["headers"]["authorization"] == http_sink.fingerprint(basic)
    done = execute(aws, {**base, "RequestBody": {"fields": {**fields, "summary": ""}}})
    assert (done["status"], done.get("error")) == ("FAILED", "States.Http.StatusCode.400")
    assert json.loads(done["cause"]) == {"errorMessages": [],
                                         "errors": {"summary": "You must specify a summary of the issue."}}


def test_a_pagerduty_event_gets_its_routing_key_from_the_connection(iam_emulator: Emulator, aws: Any,
                                                                    sink: http_sink.HttpSink) -> None:
    secret_body = {"BodyParameters": [{"Key": "routing_key", "Value": ROUTING_KEY, "IsValueSecret": True}]}
    conn = connection(aws, "API_KEY", {"ApiKeyAuthParameters": {"ApiKeyName": "X-Routing", "ApiKeyValue": "unused"},
                                       "InvocationHttpParameters": secret_body})
    run_as(iam_emulator, aws, role_statements(conn, sink.url))
    event = {"event_action": "trigger", "payload": {"summary": "GPU down", "source": "trn2-a", "severity": "critical"}}
    base = {"ApiEndpoint": sink.url + "/v2/enqueue", "Method": "POST",
            "Authentication": {"ConnectionArn": conn["ConnectionArn"]}}
    done = execute(aws, {**base, "RequestBody": {**event, "routing_key": "from-the-task"}})
    assert done["status"] == "SUCCEEDED", (done.get("error"), done.get("cause"))
    assert json.loads(done["output"])["StatusCode"] == 202
    # the connection's value wins (recorded as a fingerprint: it is a credential)
    assert sink.records("pagerduty")[-1]["body"]["routing_key"] == http_sink.fingerprint(ROUTING_KEY)
    done = execute(aws, {**base, "RequestBody": {**event, "payload": {**event["payload"], "severity": "sev1"}}})
    assert (done["status"], done.get("error")) == ("FAILED", "States.Http.StatusCode.400")
    assert json.loads(done["cause"])["status"] == "invalid event"


def test_a_generic_webhook_gets_query_and_header_parameters(iam_emulator: Emulator, aws: Any,
                                                            sink: http_sink.HttpSink) -> None:
    conn = connection(aws, "API_KEY", {"ApiKeyAuthParameters": {"ApiKeyName": "x-api-key", "ApiKeyValue": "k-123"},
                                       "InvocationHttpParameters": {"QueryStringParameters": [
                                           {"Key": "team", "Value": "sre", "IsValueSecret": False}]}})
    run_as(iam_emulator, aws, role_statements(conn, sink.url))
    done = execute(aws, {"ApiEndpoint": sink.url + "/hooks/deploy", "Method": "POST",
                         "Authentication": {"ConnectionArn": conn["ConnectionArn"]},
                         "QueryParameters": {"env": "prod"}, "RequestBody": {"a": [1, 2]},
                         "Transform": {"RequestBodyEncoding": "URL_ENCODED",
                                       "RequestEncodingOptions": {"ArrayFormat": "BRACKETS"}}})
    assert done["status"] == "SUCCEEDED", (done.get("error"), done.get("cause"))
    seen = sink.records("webhook")[-1]
    assert seen["path"] == "/hooks/deploy?env=prod&team=sre"
    assert seen["headers"]["x-api-key"] == http_sink.fingerprint("k-123")
    assert seen["headers"]["content-type"] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize("missing", ["events:RetrieveConnectionCredentials", "secretsmanager:GetSecretValue",
                                     "states:InvokeHTTPEndpoint"])
def test_a_role_without_a_documented_permission_is_refused(iam_emulator: Emulator, aws: Any,
                                                           sink: http_sink.HttpSink, missing: str) -> None:
    conn = connection(aws, "API_KEY", {"ApiKeyAuthParameters": {"ApiKeyName": "x-api-key", "ApiKeyValue": "k"}})
    statements = role_statements(conn, sink.url)
    for st in statements:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        st["Action"] = [a for a in actions if a != missing] or ["sqs:ListQueues"]
    identity = run_as(iam_emulator, aws, statements)
    before, refused_before = len(sink.records()), len(iam_emulator.denied())
    done = execute(aws, {"ApiEndpoint": sink.url + "/hooks/x", "Method": "POST",
                         "Authentication": {"ConnectionArn": conn["ConnectionArn"]}, "RequestBody": {}})
    assert done["status"] == "FAILED" and missing in done["cause"], (done.get("error"), done.get("cause"))
    assert done["error"] == ("States.Runtime" if missing.startswith("states:")
                             else "Events.ConnectionResource.AccessDenied")
    assert len(sink.records()) == before  # nothing was sent
    refusals = iam_emulator.denied()[refused_before:]  # recorded where the fleet counts denied calls
    assert [(d["action"], identity.access_key_id in d["authorization"]) for d in refusals] == [
        (missing.split(":")[1], True)]


def test_retry_and_catch_name_the_http_status(iam_emulator: Emulator, aws: Any, sink: http_sink.HttpSink) -> None:
    conn = github_setup(iam_emulator, aws, sink)
    call = {"Type": "Task", "Resource": "arn:aws:states:::http:invoke", "Parameters": {
        "ApiEndpoint": sink.url + "/repos/acme/shop/issues", "Method": "POST", "RequestBody": {},
        "Authentication": {"ConnectionArn": conn["ConnectionArn"]}},
        "Retry": [{"ErrorEquals": ["States.Http.StatusCode.429"], "MaxAttempts": 1}],
        "Catch": [{"ErrorEquals": ["States.Http.StatusCode.422"], "ResultPath": "$.error", "Next": "Handled"}],
        "End": True}
    done = run(aws, {"StartAt": "Call", "States": {"Call": call, "Handled": {"Type": "Pass", "End": True}}})
    assert done["status"] == "SUCCEEDED", (done.get("error"), done.get("cause"))
    assert json.loads(done["output"])["error"]["Error"] == "States.Http.StatusCode.422"


def test_an_endpoint_outside_the_condition_is_refused(iam_emulator: Emulator, aws: Any,
                                                      sink: http_sink.HttpSink) -> None:
    conn = connection(aws, "API_KEY", {"ApiKeyAuthParameters": {"ApiKeyName": "x-api-key", "ApiKeyValue": "k"}})
    run_as(iam_emulator, aws, role_statements(conn, sink.url + "/repos/"))
    done = execute(aws, {"ApiEndpoint": sink.url + "/hooks/x", "Method": "POST",
                         "Authentication": {"ConnectionArn": conn["ConnectionArn"]}})
    assert done["status"] == "FAILED" and "states:InvokeHTTPEndpoint" in done["cause"]


def test_slack_deliveries_through_sns_are_checked_against_the_chatbot_schema(
        iam_emulator: Emulator, aws: Any, sink: http_sink.HttpSink) -> None:
    sns = aws("sns")
    topic = sns.create_topic(Name=f"notify-{uuid.uuid4().hex[:8]}")["TopicArn"]
    http_sink.subscribe_slack(sns, topic, sink)
    before = len(sink.records("slack"))
    good = {"version": "1.0", "source": "custom", "content": {"title": "Deploy", "description": "v2 is out"}}
    sns.publish(TopicArn=topic, Message=json.dumps(good))
    sns.publish(TopicArn=topic, Message=json.dumps({"version": "1.0", "source": "agentfleet", "content": {}}))
    seen = sink.records("slack")[before:]
    assert [r["accepted"] for r in seen] == [True, False]
    assert seen[1]["reason"] == 'source must be "custom"; content.description is required'
    assert json.loads(seen[0]["body"]["Message"]) == good
