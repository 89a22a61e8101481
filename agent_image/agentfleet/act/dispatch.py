"""Starting the actions state machine, at most once per decision.

The execution name is the decision id, derived only from (agent, shard, sequence number),
so a replayed record yields the same name and Step Functions refuses a second execution
(`ExecutionAlreadyExists`, which counts as success here). Throttling and 5xx are retried
with exponential backoff and full jitter (agentfleet.ops.retry).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentfleet.ops import logs, retry

log = logs.get(__name__)
_NAME_OK = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_ARN_IN_MESSAGE = re.compile(r"(arn:[A-Za-z0-9-]+:states:[^'\"\s]+)")


def decision_id(agent: str, shard_id: str, sequence_number: str, sub_sequence: int | None = None) -> str:
    """Deterministic, valid Step Functions execution name (<= 80 chars of [A-Za-z0-9_-]).

    The agent name stays readable; the hash keeps it unique because Kinesis sequence
    numbers alone (56 digits) plus shard ids would overflow the 80-character limit.
    A user record inside a KPL-aggregated record adds its sub-sequence number; a plain
    record keeps the id it always had.
    """
    position = sequence_number if sub_sequence is None else f"{sequence_number}\n{sub_sequence}"
    digest = hashlib.sha256(f"{agent}\n{shard_id}\n{position}".encode()).hexdigest()[:32]
    prefix = re.sub(r"[^A-Za-z0-9_-]", "-", agent)[:40]
    name = f"{prefix}-{digest}"
    assert _NAME_OK.match(name), name
    return name


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN Step Functions gives an execution of `state_machine_arn` named `name`."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + name


@dataclass(frozen=True)
class ActionRequest:
    """The input the actions state machine reads (agentfleet.spec.actions_asl)."""

    decision_id: str
    agent: str
    subject: str
    action: str
    params: Mapping[str, Any]
    rationale: str
    approval_required: bool
    event_ids: Sequence[str]

    def to_input(self) -> str:
        # sort_keys: the same decision always serializes to the same input, which Step
        # Functions needs to treat a repeated start of a running execution as idempotent.
        return json.dumps({
            "decision_id": self.decision_id, "agent": self.agent, "subject": self.subject, "action": self.action,
            "params": dict(self.params), "rationale": self.rationale, "approval_required": self.approval_required,
            "event_ids": list(self.event_ids),
        }, sort_keys=True)


class Dispatcher:
    """Starts executions; returns the execution ARN whether this call or an earlier one started it."""

    def __init__(self, sfn: Any, state_machine_arn: str, *, policy: retry.RetryPolicy = retry.DEFAULT_POLICY,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not state_machine_arn:
            raise ValueError("state_machine_arn is empty; set AGENTFLEET_STATE_MACHINE_ARN or the config document")
        self._sfn, self.state_machine_arn, self._policy, self._sleep = sfn, state_machine_arn, policy, sleep

    def start(self, request: ActionRequest) -> tuple[str, bool]:
        """(execution arn, started_now). started_now is False when the execution already existed."""
        def attempt() -> tuple[str, bool]:
            try:
                response = self._sfn.start_execution(
                    stateMachineArn=self.state_machine_arn, name=request.decision_id, input=request.to_input())
                return str(response["executionArn"]), True
            except self._sfn.exceptions.ExecutionAlreadyExists as exc:
                found = _ARN_IN_MESSAGE.search(str(exc))
                if found:
                    return found.group(1).rstrip("'"), False
                return execution_arn(self.state_machine_arn, request.decision_id), False

        arn, started = retry.call(attempt, policy=self._policy, what="start_execution", sleep=self._sleep)
        log.info("action dispatched" if started else "action already dispatched",
                 extra={"decision_id": request.decision_id, "agent": request.agent, "action": request.action,
                        "execution_arn": arn})
        return arn, started
