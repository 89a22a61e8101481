"""Shared by the HTTP Task tests: the sink, admin clients, connections, the state machine identity, runs.

Each test builds its own EventBridge connection and a one-state machine with the documented HTTP Task
Parameters, runs it as an IAM user holding exactly the statements aws-cdk-lib 2.275's HttpInvoke grants
(events:RetrieveConnectionCredentials, secretsmanager:GetSecretValue/DescribeSecret on the connection's
secret, states:InvokeHTTPEndpoint with a states:HTTPEndpoint condition), and checks both ends.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from agentfleet.local import http_sink, iam
from agentfleet.local.emulator import REGION, Emulator, Identity
from agentfleet.local.sink_targets import Credentials

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
