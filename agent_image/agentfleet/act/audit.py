"""The audit table: one record per decision and one per quarantined record.

A decision record is written *before* its action is started (write-ahead) and only if
none exists yet (conditional put). On a replay the stored record wins, so the action
that runs is always the one the audit trail shows, and the key never changes.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agentfleet.ops import ddb, logs, retry
from agentfleet.spec.tables import AUDIT_PK, KIND_DECISION, KIND_QUARANTINE, audit_key

log = logs.get(__name__)
_RAW_PREVIEW_BYTES = 2048


def iso_now(clock: Callable[[], float] = time.time) -> str:
    return datetime.fromtimestamp(clock(), tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class DecisionRecord:
    """Everything needed to explain (and, on replay, re-dispatch) one decision."""

    decision_id: str
    agent: str
    subject: str
    event_ids: tuple[str, ...]
    shard_id: str
    sequence_number: str
    model: str
    outcome: str
    reason: str
    action: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    rationale: str = ""
    confidence: float = 0.0
    approval_required: bool = False
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    worker_id: str = ""
    at: str = ""
    execution_arn: str = ""
    sub_sequence_number: int | None = None  # KPL user record within the stream record

    def to_item(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values.update(event_ids=list(self.event_ids), params=dict(self.params),
                      execution_arn=self.execution_arn or None, tokens=self.prompt_tokens + self.completion_tokens)
        return ddb.to_item({AUDIT_PK: audit_key(KIND_DECISION, self.decision_id), "kind": KIND_DECISION, **values})

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> DecisionRecord:
        plain = ddb.from_item(item)
        known = {k: plain[k] for k in cls.__dataclass_fields__ if k in plain}
        known["event_ids"] = tuple(known.get("event_ids", ()))
        return cls(**known)


class AuditLog:
    """Writes to the audit table; every write is retried on throttling/5xx and is idempotent."""

    def __init__(self, dynamodb: Any, table: str, *, clock: Callable[[], float] = time.time,
                 policy: retry.RetryPolicy = retry.DEFAULT_POLICY, sleep: Callable[[float], None] = time.sleep) -> None:
        self._ddb, self.table, self._clock, self._policy, self._sleep = dynamodb, table, clock, policy, sleep

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        return retry.call(fn, policy=self._policy, what=what, sleep=self._sleep)

    def record_decision(self, record: DecisionRecord) -> tuple[DecisionRecord, bool]:
        """(the stored record, written_now). An existing record for the same decision is kept and returned."""
        if not record.at:
            record = DecisionRecord(**{**record.__dict__, "at": iso_now(self._clock)})
        try:
            self._call("audit put", lambda: self._ddb.put_item(
                TableName=self.table, Item=record.to_item(), ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": AUDIT_PK}))
            return record, True
        except Exception as exc:
            if not ddb.is_conditional_failure(exc):
                raise
        stored = self._call("audit get", lambda: self._ddb.get_item(
            TableName=self.table, Key={AUDIT_PK: {"S": audit_key(KIND_DECISION, record.decision_id)}},
            ConsistentRead=True))
        return DecisionRecord.from_item(stored["Item"]), False

    def set_execution(self, decision_id: str, arn: str) -> None:
        self._call("audit update", lambda: self._ddb.update_item(
            TableName=self.table, Key={AUDIT_PK: {"S": audit_key(KIND_DECISION, decision_id)}},
            UpdateExpression="SET execution_arn = :arn", ExpressionAttributeValues={":arn": {"S": arn}}))

    def quarantine(self, *, shard_id: str, sequence_number: str, reason: str, detail: str, data: bytes,
                   event_id: str = "", event_type: str = "", worker_id: str = "",
                   sub_sequence: int | None = None) -> None:
        """Record a rejected record; the key is its stream position, so a replay overwrites, never duplicates."""
        preview = data[:_RAW_PREVIEW_BYTES]
        position = f"{shard_id}:{sequence_number}" + ("" if sub_sequence is None else f":{sub_sequence}")
        item = ddb.to_item({
            AUDIT_PK: audit_key(KIND_QUARANTINE, position), "kind": KIND_QUARANTINE,
            "at": iso_now(self._clock), "reason": reason, "detail": detail, "shard_id": shard_id,
            "sequence_number": sequence_number, "sub_sequence_number": sub_sequence,
            "event_id": event_id or None, "event_type": event_type or None,
            "size_bytes": len(data), "raw_preview_b64": base64.b64encode(preview).decode(), "worker_id": worker_id,
        })
        self._call("quarantine put", lambda: self._ddb.put_item(TableName=self.table, Item=item))
        log.warning("record quarantined", extra={"shard_id": shard_id, "sequence_number": sequence_number,
                                                 "reason": reason, "detail": detail, "event_id": event_id})
