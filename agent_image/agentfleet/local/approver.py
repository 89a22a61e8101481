"""The local approver: answers every approval request the actions state machine sends.

In AWS a person approves from the SNS message (an email, a chat bot). Locally an SQS
queue subscribes to the approval topic, and this loop reads each request and answers
SendTaskSuccess with its task token, so approval-gated executions finish too.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from agentfleet.ops import logs

log = logs.get(__name__)


def parse_request(body: str) -> dict[str, Any] | None:
    """The approval request from an SQS body holding an SNS envelope (or the raw message). The
    workflow sends a chat custom notification whose metadata.additionalContext holds decision_id,
    agent, action and task_token (agentfleet/spec/actions.asl.json, RequestApproval)."""
    try:
        doc = json.loads(body)
        message = doc.get("Message", doc) if isinstance(doc, dict) else None
        if isinstance(message, str):
            message = json.loads(message)
    except ValueError:
        return None
    if isinstance(message, dict) and isinstance(message.get("metadata"), dict):
        message = message["metadata"].get("additionalContext")
    return message if isinstance(message, dict) and message.get("task_token") else None


class Approver:
    """Subscribes a queue to the approval topic at `start()`, answers requests until `stop()`."""

    def __init__(self, sqs: Any, sns: Any, sfn: Any, topic_arn: str, queue_name: str = "agentfleet-local-approver"):
        self._sqs, self._sns, self._sfn, self.topic_arn, self.queue_name = sqs, sns, sfn, topic_arn, queue_name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="approver", daemon=True)
        self.approved: list[str] = []
        self.errors: list[str] = []
        self.queue_url = ""

    def start(self) -> None:
        self.queue_url = self._sqs.create_queue(QueueName=self.queue_name)["QueueUrl"]
        queue_arn = self._sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        self._sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                                     WaitTimeSeconds=1).get("Messages", [])
            except Exception as exc:  # the emulator stopping under us ends the loop, nothing else should
                if self._stop.is_set():
                    return
                log.warning("approver receive failed", extra={"error": repr(exc)})
                self._stop.wait(1.0)
                continue
            for message in messages:
                self._answer(message)

    def _answer(self, message: dict[str, Any]) -> None:
        request = parse_request(message.get("Body", ""))
        if request is None:
            self.errors.append("unreadable approval message")
        else:
            decision_id = str(request.get("decision_id", ""))
            try:
                self._sfn.send_task_success(taskToken=request["task_token"], output=json.dumps(
                    {"approved_by": "local-approver", "decision_id": decision_id}))
                self.approved.append(decision_id)
                log.info("approved", extra={"decision_id": decision_id, "agent": request.get("agent"),
                                            "action": request.get("action")})
            except Exception as exc:  # e.g. the execution timed out already: record it, keep going
                self.errors.append(f"{decision_id}: {exc}")
        self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
