"""Step Functions HTTP Tasks run in the IAM-enforced emulator and reach the loopback sink.

Each test builds its own EventBridge connection and a one-state machine with the documented HTTP Task
Parameters, runs it as an IAM user holding exactly the statements aws-cdk-lib 2.275's HttpInvoke grants
(events:RetrieveConnectionCredentials, secretsmanager:GetSecretValue/DescribeSecret on the connection's
secret, states:InvokeHTTPEndpoint with a states:HTTPEndpoint condition), and checks both ends.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import boto3
import pytest

from agentfleet.local import cfn_deferred, cfn_prep, http_sink, iam
from agentfleet.local.emulator import REGION, Emulator, Identity
from agentfleet.local.sink_targets import Credentials

pytestmark = pytest.mark.integration

GITHUB_TOKEN = "ghp_" + "a" * 36
JIRA_USER, JIRA_TOKEN = "bot@example.com", "jira-api-token"
ROUTING_KEY = "R" * 32


@pytest.fixture(scope="module")
def sink() -> Iterator[http_sink.HttpSink]:
    started = http_sink.start(credentials=Credentials(github_tokens={GITHUB_TOKEN},
                                                      jira_basic={f"{JIRA_USER}:{JIRA_TOKEN}"},
                                                      pagerduty_routing_keys={ROUTING_KEY}))
    yield started
    started.stop()


@pytest.fixture
def aws(iam_emulator: Emulator) -> Any:
    env = iam_emulator.env()
    session = boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=REGION)
    return lambda service: session.client(service, endpoint_url=iam_emulator.endpoint)


def connection(aws: Any, kind: str, auth: dict[str, Any]) -> dict[str, Any]:
    arn = aws("events").create_connection(Name=f"c-{uuid.uuid4().hex[:8]}", AuthorizationType=kind,
                                          AuthParameters=auth)["ConnectionArn"]
    return aws("events").describe_connection(Name=arn.split("/")[1])


def role_statements(conn: dict[str, Any], endpoint: str) -> list[dict[str, Any]]:
    """aws-cdk-lib 2.275 aws-stepfunctions-tasks/lib/http/invoke.js buildTaskPolicyStatements."""
    return [{"Effect": "Allow", "Action": "events:RetrieveConnectionCredentials", "Resource": conn["ConnectionArn"]},
            {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
             "Resource": conn["SecretArn"]},
            {"Effect": "Allow", "Action": "states:InvokeHTTPEndpoint", "Resource": "*",
             "Condition": {"StringLike": {"states:HTTPEndpoint": endpoint + "*"}}}]


def run_as(emu: Emulator, aws: Any, statements: list[dict[str, Any]]) -> Identity:
    """The state machine identity, made the way the local fleet makes it (iam.create_worker: resources of
    services moto checks by action only are widened to "*", conditions kept)."""
    doc = iam.PolicyDoc("HttpTask", "test", "inline", {"Version": "2012-10-17", "Statement": statements})
    identity, _ = iam.create_worker(aws("iam"), f"sm-{uuid.uuid4().hex[:8]}", [doc])
    emu.run_state_machines_as(identity)
    return identity


def execute(aws: Any, parameters: dict[str, Any], payload: dict[str, Any] | None = None) -> dict[str, Any]:
    return run(aws, {"StartAt": "Call", "States": {"Call": {
        "Type": "Task", "Resource": "arn:aws:states:::http:invoke", "Parameters": parameters, "End": True}}}, payload)


def run(aws: Any, definition: dict[str, Any], payload: dict[str, Any] | None = None) -> dict[str, Any]:
    sfn = aws("stepfunctions")
    machine = sfn.create_state_machine(name=f"http-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition),
                                       roleArn="arn:aws:iam::123456789012:role/http-task")["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps(payload or {}))["executionArn"]
    deadline = time.monotonic() + 60
    while (done := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not finish"
        time.sleep(0.1)
    return dict(done)


def github_setup(emu: Emulator, aws: Any, sink: http_sink.HttpSink, token: str = GITHUB_TOKEN) -> dict[str, Any]:
    conn = connection(aws, "API_KEY", {"ApiKeyAuthParameters": {"ApiKeyName": "Authorization",
                                                                "ApiKeyValue": f"Bearer {token}"}})
    run_as(emu, aws, role_statements(conn, sink.url))
    return conn


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
    assert sink.records("pagerduty")[-1]["body"]["routing_key"] == ROUTING_KEY  # the connection's value wins
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


class _TokenEndpoint(BaseHTTPRequestHandler):
    """An OAuth client-credentials token endpoint (RFC 6749 section 4.4) that counts what it issued."""

    issued: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        expected = "Basic " + base64.b64encode(b"client-1:shh").decode()
        ok = self.headers.get("Authorization") == expected
        body = json.dumps({"access_token": f"tok-{len(self.issued) + 1}", "token_type": "Bearer",
                           "expires_in": 3600} if ok else {"error": "invalid_client"}).encode()
        if ok:
            self.issued.append(f"tok-{len(self.issued) + 1}")
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_an_oauth_connection_fetches_a_token_once_and_sends_it(iam_emulator: Emulator, aws: Any,
                                                               sink: http_sink.HttpSink) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        conn = connection(aws, "OAUTH_CLIENT_CREDENTIALS", {"OAuthParameters": {
            "AuthorizationEndpoint": f"http://127.0.0.1:{server.server_address[1]}/oauth/token", "HttpMethod": "POST",
            "ClientParameters": {"ClientID": "client-1", "ClientSecret": "shh"},
            "OAuthHttpParameters": {"BodyParameters": [{"Key": "grant_type", "Value": "client_credentials"}]}}})
        run_as(iam_emulator, aws, role_statements(conn, sink.url))
        call = {"ApiEndpoint": sink.url + "/hooks/oauth", "Method": "POST", "RequestBody": {},
                "Authentication": {"ConnectionArn": conn["ConnectionArn"]}}
        assert [execute(aws, call)["status"] for _ in range(2)] == ["SUCCEEDED", "SUCCEEDED"]
    finally:
        server.shutdown()
        server.server_close()
    assert _TokenEndpoint.issued == ["tok-1"]  # cached for the second execution
    sent = [r["headers"]["authorization"] for r in sink.records("webhook") if r["path"] == "/hooks/oauth"]
    assert sent == [http_sink.fingerprint("Bearer tok-1")] * 2


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


def test_a_connection_from_a_template_is_created_and_usable(iam_emulator: Emulator, aws: Any,
                                                            sink: http_sink.HttpSink) -> None:
    """The shape aws-cdk-lib 2.275 synthesizes for events.Connection + tasks.HttpInvoke (a Secrets Manager
    dynamic reference for the key, GetAtt Arn in the definition), through cfn_prep and cfn_deferred."""
    stack = f"t{uuid.uuid4().hex[:6]}"
    call = {"Type": "Task", "Resource": "arn:aws:states:::http:invoke", "End": True, "Parameters": {
        "ApiEndpoint": sink.url + "/repos/acme/shop/issues", "Method": "POST", "RequestBody": {"title": "from cfn"},
        "Authentication": {"ConnectionArn": "@@"}}}
    head, tail = json.dumps({"StartAt": "Call", "States": {"Call": call}}).split("@@")
    template = {"Resources": {
        "Tok": {"Type": "AWS::SecretsManager::Secret",
                "Properties": {"SecretString": json.dumps({"token": f"Bearer {GITHUB_TOKEN}"})}},
        "Gh": {"Type": "AWS::Events::Connection", "Properties": {"AuthorizationType": "API_KEY", "AuthParameters": {
            "ApiKeyAuthParameters": {"ApiKeyName": "Authorization", "ApiKeyValue": {"Fn::Join": ["", [
                "{{resolve:secretsmanager:", {"Ref": "Tok"}, ":SecretString:token::}}"]]}}}}},
        "M": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
            "RoleArn": "arn:aws:iam::123456789012:role/m",
            "DefinitionString": {"Fn::Join": ["", [head, {"Fn::GetAtt": ["Gh", "Arn"]}, tail]]}}}}}
    prepared = cfn_prep.prepare(template, stack, image_id="ami-local", modelled=cfn_prep.modelled_types())
    lines = cfn_deferred.create(prepared.deferred, cfn_deferred.Resolver({}, {}, {}, stack), aws)
    assert all("created through its API" in line for line in lines), lines
    conn = aws("events").describe_connection(Name=f"{stack}-Gh")
    run_as(iam_emulator, aws, role_statements(conn, sink.url))
    sfn = aws("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=prepared.deferred[0].arn, input="{}")["executionArn"]
    deadline = time.monotonic() + 60
    while (done := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert done["status"] == "SUCCEEDED", (done.get("error"), done.get("cause"))
    assert sink.records("github")[-1]["headers"]["authorization"] == http_sink.fingerprint(f"Bearer {GITHUB_TOKEN}")
