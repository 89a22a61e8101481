"""The actions state machine (agentfleet.spec.actions_asl) executed by the emulator for real.

The emulator (moto) does not run the HTTP Task, so delivery to a target is not exercised here;
the disabled-target path, notify, approval and the outcome record are."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from agentfleet.local.approver import parse_request
from agentfleet.local.resources import render_asl
from agentfleet.ops.aws import client
from agentfleet.spec.targets import parse_targets

pytestmark = pytest.mark.integration
# Both disabled: the ASL routes them to MarkSkippedTargetDisabled, no HTTP Task is generated.
TARGETS = parse_targets({name: {"kind": "webhook", "url": "https://hooks.example.com/in", "enabled": False,
                                "auth": {"type": "api_key", "secret_name": "s", "header": "X-Key"}}
                         for name in ("open_ticket", "post_webhook")})


@pytest.fixture(scope="module")
def machine(emulator: Any) -> dict[str, Any]:
    import os

    os.environ.update(emulator.env())
    sns, ddb, sfn = client("sns"), client("dynamodb"), client("stepfunctions")
    notify = sns.create_topic(Name="asl-notify")["TopicArn"]
    approval = sns.create_topic(Name="asl-approval")["TopicArn"]
    ddb.create_table(
        TableName="asl-audit", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    definitions = {}
    for flavour, targets in (("targets", TARGETS), ("none", ())):
        definition = render_asl({"ApprovalTimeoutSeconds": "3600", "ApprovalTopicArn": approval,
                                 "NotifyTopicArn": notify, "AuditTableName": "asl-audit"}, targets)
        definitions[flavour] = sfn.create_state_machine(
            name=f"asl-actions-{flavour}", definition=definition,
            roleArn="arn:aws:iam::123456789012:role/asl",
        )["stateMachineArn"]
    return {"sfn": sfn, "ddb": ddb, "sns": sns, "notify": notify, "arn": definitions}


def _run(machine: dict[str, Any], flavour: str, name: str, **fields: Any) -> dict[str, Any]:
    body = {"decision_id": name, "agent": "ci-triage", "subject": "svc-a", "action": "notify",
            "params": {"message": "build broke"}, "rationale": "r", "approval_required": False, **fields}
    arn = machine["sfn"].start_execution(
        stateMachineArn=machine["arn"][flavour], name=name, input=json.dumps(body))["executionArn"]
    return {"arn": arn}


def _wait(machine: dict[str, Any], arn: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = machine["sfn"].describe_execution(executionArn=arn)["status"]
        if status != "RUNNING":
            return str(status)
        time.sleep(0.2)
    return "RUNNING"


def _record(machine: dict[str, Any], decision_id: str) -> dict[str, Any]:
    item = machine["ddb"].get_item(TableName="asl-audit", Key={"pk": {"S": f"outcome#{decision_id}"}})["Item"]
    return {k: next(iter(v.values())) for k, v in item.items()}


def _outcome(machine: dict[str, Any], decision_id: str) -> str:
    return str(_record(machine, decision_id)["outcome"])


def _task_token(machine: dict[str, Any], arn: str) -> str:
    """The token the approval request carried (what an approver receives by SNS)."""
    history = machine["sfn"].get_execution_history(executionArn=arn)["events"]
    scheduled = [e for e in history if e["type"] == "TaskScheduled"]
    message = json.loads(scheduled[-1]["taskScheduledEventDetails"]["parameters"])["Message"]
    message = json.loads(message) if isinstance(message, str) else message
    return str(message["metadata"]["additionalContext"]["task_token"])


def test_notify_succeeds_and_records_outcome(machine: dict[str, Any]) -> None:
    run = _run(machine, "targets", "d-notify")
    assert _wait(machine, run["arn"]) == "SUCCEEDED"
    record = _record(machine, "d-notify")
    assert (record["outcome"], record["target"], record["status_code"], record["response"]) == (
        "succeeded", "", "0", "")
    assert json.loads(record["error"]) == {"Error": "", "Cause": ""}


def test_notify_message_is_a_chat_custom_notification(machine: dict[str, Any]) -> None:
    """Chatbot Administrator Guide, "Custom notifications", event schema: version, source, id, content, metadata."""
    run = _run(machine, "targets", "d-chat")
    assert _wait(machine, run["arn"]) == "SUCCEEDED"
    history = machine["sfn"].get_execution_history(executionArn=run["arn"])["events"]
    scheduled = next(e for e in history if e["type"] == "TaskScheduled")
    message = json.loads(scheduled["taskScheduledEventDetails"]["parameters"])["Message"]
    message = json.loads(message) if isinstance(message, str) else message
    assert (message["version"], message["source"], message["id"]) == ("1.0", "custom", "d-chat")
    assert message["content"]["title"] == "ci-triage: svc-a" and message["content"]["description"] == "r"
    assert message["metadata"]["threadId"] == "svc-a"
    context = message["metadata"]["additionalContext"]
    assert (context["decision_id"], context["agent"], json.loads(context["params"])) == (
        "d-chat", "ci-triage", {"message": "build broke"})


def test_notify_survives_a_subject_longer_than_sns_allows(machine: dict[str, Any]) -> None:
    run = _run(machine, "targets", "d-long-subject", subject="s" * 512)
    assert _wait(machine, run["arn"]) == "SUCCEEDED"
    assert _outcome(machine, "d-long-subject") == "succeeded"


def test_a_disabled_target_is_skipped_and_recorded(machine: dict[str, Any]) -> None:
    run = _run(machine, "targets", "d-target-off", action="post_webhook")
    assert _wait(machine, run["arn"]) == "SUCCEEDED"
    record = _record(machine, "d-target-off")
    assert (record["outcome"], record["target"]) == ("skipped_target_disabled", "post_webhook")


def test_an_action_that_is_no_target_is_unknown(machine: dict[str, Any]) -> None:
    run = _run(machine, "none", "d-no-target", action="open_ticket")
    assert _wait(machine, run["arn"]) == "SUCCEEDED"
    assert _outcome(machine, "d-no-target") == "unknown_action"


def test_approval_waits_for_the_task_token_then_acts(machine: dict[str, Any]) -> None:
    run = _run(machine, "targets", "d-approve", approval_required=True)
    time.sleep(1.0)
    assert machine["sfn"].describe_execution(executionArn=run["arn"])["status"] == "RUNNING"
    token = _task_token(machine, run["arn"])
    history = machine["sfn"].get_execution_history(executionArn=run["arn"])["events"]
    request = parse_request(json.dumps({"Message": json.loads(next(
        e for e in history if e["type"] == "TaskScheduled")["taskScheduledEventDetails"]["parameters"])["Message"]}))
    assert request is not None and (request["task_token"], request["action"]) == (token, "notify")
    machine["sfn"].send_task_success(taskToken=token, output=json.dumps({"approved_by": "alice"}))
    assert _wait(machine, run["arn"]) == "SUCCEEDED"
    assert _outcome(machine, "d-approve") == "succeeded"


def test_rejected_approval_is_recorded_not_acted(machine: dict[str, Any]) -> None:
    run = _run(machine, "targets", "d-reject", approval_required=True)
    time.sleep(1.0)
    token = _task_token(machine, run["arn"])
    machine["sfn"].send_task_failure(taskToken=token, error="Rejected", cause="not now")
    assert _wait(machine, run["arn"]) == "SUCCEEDED"
    assert _outcome(machine, "d-reject") == "rejected"


def test_same_execution_name_never_starts_a_second_execution(machine: dict[str, Any]) -> None:
    first = _run(machine, "targets", "d-once")
    # While it runs, the same name and input is idempotent (same ARN); after it ends, rejected.
    try:
        again = _run(machine, "targets", "d-once")
        assert again["arn"] == first["arn"]
    except machine["sfn"].exceptions.ExecutionAlreadyExists:
        pass
    assert _wait(machine, first["arn"]) == "SUCCEEDED"
    with pytest.raises(machine["sfn"].exceptions.ExecutionAlreadyExists):
        _run(machine, "targets", "d-once")
    executions = machine["sfn"].list_executions(stateMachineArn=machine["arn"]["targets"])["executions"]
    assert [e["name"] for e in executions].count("d-once") == 1


def test_an_approval_error_that_is_not_a_rejection_is_a_failure(machine: dict[str, Any]) -> None:
    """Only error "Rejected" is a human's no; anything else (a broken approver, an SNS failure)
    fails the execution and records "failed", so the ActionFailures alarm sees it."""
    run = _run(machine, "targets", "d-approval-broken", approval_required=True)
    time.sleep(1.0)
    token = _task_token(machine, run["arn"])
    machine["sfn"].send_task_failure(taskToken=token, error="ApproverCrashed", cause="KeyError in the approver")
    assert _wait(machine, run["arn"]) == "FAILED"
    record = _record(machine, "d-approval-broken")
    assert record["outcome"] == "failed"
    # The error is kept; the emulator drops SendTaskFailure's cause (null), AWS passes it on.
    assert json.loads(record["error"])["Error"] == "ApproverCrashed"


def test_an_enabled_target_gets_a_connection_and_an_http_task(machine: dict[str, Any]) -> None:
    """Local mode's path (agentfleet.local.resources): a connection per enabled target, its ARN
    substituted into the HTTP Task. Not created here: moto's ASL parser refuses error names with the
    reserved "States." prefix it does not know, such as the HTTP Task's States.Http.StatusCode.429."""
    from agentfleet.local import resources

    (target,) = parse_targets({"page_oncall": {
        "kind": "pagerduty", "url": "https://events.pagerduty.com/v2/enqueue", "enabled": True,
        "auth": {"type": "api_key", "secret_name": "agentfleet/pd", "header": "X-Key"}}})
    arn = resources._connection(client("events"), "asl-actions-page_oncall", target)
    definition = render_asl({"ApprovalTimeoutSeconds": "3600", "ApprovalTopicArn": "arn:aws:sns:us-east-1:1:a",
                             "NotifyTopicArn": "arn:aws:sns:us-east-1:1:n", "AuditTableName": "asl-audit",
                             "ConnectionArn_page_oncall": arn}, [target])
    task = json.loads(definition)["States"]["Deliver page_oncall"]
    assert task["Parameters"]["Authentication"]["ConnectionArn"] == arn and ":connection/" in arn
    with pytest.raises(ValueError, match="ConnectionArn_page_oncall"):
        render_asl({"ApprovalTimeoutSeconds": "1", "ApprovalTopicArn": "a", "NotifyTopicArn": "n",
                    "AuditTableName": "t"}, [target])
