"""The actions state machine (constructs/actions.asl.json) executed by the emulator for real."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from agentfleet.ops.aws import client

ASL = Path(__file__).resolve().parent.parent / "constructs" / "actions.asl.json"
pytestmark = pytest.mark.integration


def _substitute(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("${" + key + "}", value)
    assert "${" not in text, "every substitution in the ASL must be provided"
    return text


@pytest.fixture(scope="module")
def machine(emulator: Any) -> dict[str, Any]:
    import os

    os.environ.update(emulator.env())
    sns, ddb, sfn, events = client("sns"), client("dynamodb"), client("stepfunctions"), client("events")
    notify = sns.create_topic(Name="asl-notify")["TopicArn"]
    approval = sns.create_topic(Name="asl-approval")["TopicArn"]
    ddb.create_table(
        TableName="asl-audit", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    bus = events.create_event_bus(Name="asl-bus")["EventBusArn"]
    definitions = {}
    for tickets in ("true", "false"):
        definition = _substitute(ASL.read_text(), {
            "TicketsEnabled": tickets, "ApprovalTimeoutSeconds": "3600", "ApprovalTopicArn": approval,
            "NotifyTopicArn": notify, "EventBusName": bus.split("/")[-1], "AuditTableName": "asl-audit",
        })
        definitions[tickets] = sfn.create_state_machine(
            name=f"asl-actions-{tickets}", definition=definition,
            roleArn="arn:aws:iam::123456789012:role/asl",
        )["stateMachineArn"]
    return {"sfn": sfn, "ddb": ddb, "arn": definitions}


def _run(machine: dict[str, Any], tickets: str, name: str, **fields: Any) -> dict[str, Any]:
    body = {"decision_id": name, "agent": "ci-triage", "subject": "svc-a", "action": "notify",
            "params": {"message": "build broke"}, "rationale": "r", "approval_required": False, **fields}
    arn = machine["sfn"].start_execution(
        stateMachineArn=machine["arn"][tickets], name=name, input=json.dumps(body))["executionArn"]
    return {"arn": arn}


def _wait(machine: dict[str, Any], arn: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = machine["sfn"].describe_execution(executionArn=arn)["status"]
        if status != "RUNNING":
            return str(status)
        time.sleep(0.2)
    return "RUNNING"


def _outcome(machine: dict[str, Any], decision_id: str) -> str:
    item = machine["ddb"].get_item(TableName="asl-audit", Key={"pk": {"S": f"outcome#{decision_id}"}})["Item"]
    return str(item["outcome"]["S"])


def _task_token(machine: dict[str, Any], arn: str) -> str:
    """The token the approval request carried (what an approver receives by SNS)."""
    history = machine["sfn"].get_execution_history(executionArn=arn)["events"]
    scheduled = [e for e in history if e["type"] == "TaskScheduled"]
    message = json.loads(scheduled[-1]["taskScheduledEventDetails"]["parameters"])["Message"]
    return str((json.loads(message) if isinstance(message, str) else message)["task_token"])


def test_notify_succeeds_and_records_outcome(machine: dict[str, Any]) -> None:
    run = _run(machine, "false", "d-notify")
    assert _wait(machine, run["arn"]) == "SUCCEEDED"
    assert _outcome(machine, "d-notify") == "succeeded"


def test_notify_survives_a_subject_longer_than_sns_allows(machine: dict[str, Any]) -> None:
    run = _run(machine, "false", "d-long-subject", subject="s" * 512)
    assert _wait(machine, run["arn"]) == "SUCCEEDED"
    assert _outcome(machine, "d-long-subject") == "succeeded"


def test_ticket_is_skipped_when_tickets_are_off(machine: dict[str, Any]) -> None:
    run = _run(machine, "false", "d-ticket-off", action="open_ticket")
    assert _wait(machine, run["arn"]) == "SUCCEEDED"
    assert _outcome(machine, "d-ticket-off") == "skipped_tickets_disabled"


def test_ticket_becomes_an_event_when_tickets_are_on(machine: dict[str, Any]) -> None:
    run = _run(machine, "true", "d-ticket-on", action="open_ticket")
    assert _wait(machine, run["arn"]) == "SUCCEEDED"
    assert _outcome(machine, "d-ticket-on") == "succeeded"


def test_approval_waits_for_the_task_token_then_acts(machine: dict[str, Any]) -> None:
    run = _run(machine, "false", "d-approve", approval_required=True)
    time.sleep(1.0)
    assert machine["sfn"].describe_execution(executionArn=run["arn"])["status"] == "RUNNING"
    token = _task_token(machine, run["arn"])
    machine["sfn"].send_task_success(taskToken=token, output=json.dumps({"approved_by": "alice"}))
    assert _wait(machine, run["arn"]) == "SUCCEEDED"
    assert _outcome(machine, "d-approve") == "succeeded"


def test_rejected_approval_is_recorded_not_acted(machine: dict[str, Any]) -> None:
    run = _run(machine, "false", "d-reject", approval_required=True)
    time.sleep(1.0)
    token = _task_token(machine, run["arn"])
    machine["sfn"].send_task_failure(taskToken=token, error="Rejected", cause="not now")
    assert _wait(machine, run["arn"]) == "SUCCEEDED"
    assert _outcome(machine, "d-reject") == "rejected"


def test_same_execution_name_never_starts_a_second_execution(machine: dict[str, Any]) -> None:
    first = _run(machine, "false", "d-once")
    # While it runs, the same name and input is idempotent (same ARN); after it ends, rejected.
    try:
        again = _run(machine, "false", "d-once")
        assert again["arn"] == first["arn"]
    except machine["sfn"].exceptions.ExecutionAlreadyExists:
        pass
    assert _wait(machine, first["arn"]) == "SUCCEEDED"
    with pytest.raises(machine["sfn"].exceptions.ExecutionAlreadyExists):
        _run(machine, "false", "d-once")
    executions = machine["sfn"].list_executions(stateMachineArn=machine["arn"]["false"])["executions"]
    assert [e["name"] for e in executions].count("d-once") == 1


def test_an_approval_error_that_is_not_a_rejection_is_a_failure(machine: dict[str, Any]) -> None:
    """Only error "Rejected" is a human's no; anything else (a broken approver, an SNS failure)
    fails the execution and records "failed", so the ActionFailures alarm sees it."""
    run = _run(machine, "false", "d-approval-broken", approval_required=True)
    time.sleep(1.0)
    token = _task_token(machine, run["arn"])
    machine["sfn"].send_task_failure(taskToken=token, error="ApproverCrashed", cause="KeyError in the approver")
    assert _wait(machine, run["arn"]) == "FAILED"
    assert _outcome(machine, "d-approval-broken") == "failed"
