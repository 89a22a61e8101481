"""HTTP Task connections beyond a static key: OAuth client credentials (token fetched once), and a
connection declared in a template (created by the local CloudFormation path) used by a state machine."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from agentfleet.local import cfn_deferred, cfn_prep, http_sink
from agentfleet.local.emulator import Emulator
from tests.local import http_task_helpers
from tests.local.http_task_helpers import GITHUB_TOKEN, connection, execute, role_statements, run_as

pytestmark = pytest.mark.integration
sink, aws = http_task_helpers.sink, http_task_helpers.aws  # the fixtures these tests use


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
