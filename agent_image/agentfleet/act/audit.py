"""The audit table: one record per decision and one per quarantined record.

A decision record is written *before* its action is started (write-ahead) and only if
none exists yet (conditional put). On a replay the stored record wins, so the action
that runs is always the one the audit trail shows, and the key never changes.

Nothing lost means the bytes are kept: a quarantined record's, or a permanently failed work
item's, full payload is written to S3 (`<prefix><shard>/<sequence>[-<sub>]`, server-side
encrypted) before its audit item, which points to it (`payload_s3`) and keeps the original
partition key, so `python -m agentfleet.entrypoints.requeue` can put it back on the stream.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agentfleet.ops import ddb, logs, retry
from agentfleet.spec.tables import (
    AUDIT_INDEX,
    AUDIT_INDEX_PK,
    AUDIT_INDEX_SK,
    AUDIT_PK,
    KIND_DECISION,
    KIND_QUARANTINE,
    audit_key,
    index_key,
    kind_buckets,
)

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
    payload_s3: str = ""  # s3://bucket/key of the record's bytes, for an item that permanently failed
    partition_key: str = ""

    def to_item(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values.update(event_ids=list(self.event_ids), params=dict(self.params),
                      execution_arn=self.execution_arn or None, tokens=self.prompt_tokens + self.completion_tokens,
                      payload_s3=self.payload_s3 or None, partition_key=self.partition_key or None)
        pk = audit_key(KIND_DECISION, self.decision_id)
        return ddb.to_item({AUDIT_PK: pk, "kind": KIND_DECISION, **index_key(KIND_DECISION, pk), **values})

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> DecisionRecord:
        plain = ddb.from_item(item)
        known = {k: plain[k] for k in cls.__dataclass_fields__ if k in plain}
        known["event_ids"] = tuple(known.get("event_ids", ()))
        return cls(**known)


def list_kind(dynamodb: Any, table: str, kind: str, *, since: str = "", until: str = "") -> list[dict[str, Any]]:
    """Every audit item of one kind (optionally with `since` <= at <= `until`, ISO-8601 UTC), oldest
    first: one Query per index bucket (spec/tables.py), merged by `at`."""
    condition, values = "#b = :b", {}
    if since or until:
        condition += " AND #at BETWEEN :lo AND :hi"
        values = {":lo": {"S": since or "0"}, ":hi": {"S": until or "9999"}}
    items: list[dict[str, Any]] = []
    for bucket in kind_buckets(kind):
        kwargs: dict[str, Any] = {
            "TableName": table, "IndexName": AUDIT_INDEX, "KeyConditionExpression": condition,
            "ExpressionAttributeNames": {"#b": AUDIT_INDEX_PK, **({"#at": AUDIT_INDEX_SK} if values else {})},
            "ExpressionAttributeValues": {":b": {"S": bucket}, **values}}
        while True:
            page = dynamodb.query(**kwargs)
            items += [ddb.from_item(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return sorted(items, key=lambda item: str(item.get(AUDIT_INDEX_SK, "")))


class AuditLog:
    """Writes to the audit table; every write is retried on throttling/5xx and is idempotent."""

    def __init__(self, dynamodb: Any, table: str, *, clock: Callable[[], float] = time.time,
                 policy: retry.RetryPolicy = retry.DEFAULT_POLICY, sleep: Callable[[float], None] = time.sleep,
                 s3: Any = None, bucket: str = "", prefix: str = "quarantine/") -> None:
        self._ddb, self.table, self._clock, self._policy, self._sleep = dynamodb, table, clock, policy, sleep
        self._s3, self.bucket, self.prefix = s3, bucket, prefix
        if s3 is None or not bucket:
            log.warning("no quarantine bucket (quarantine_bucket, cache_bucket): bad records' bytes are not kept")

    def keep(self, shard_id: str, sequence_number: str, sub_sequence: int | None, data: bytes) -> str:
        """Write a record's bytes to S3; returns s3://bucket/key ("" without a bucket). Idempotent (same key)."""
        if self._s3 is None or not self.bucket:
            return ""
        key = f"{self.prefix}{shard_id}/{sequence_number}" + ("" if sub_sequence is None else f"-{sub_sequence}")
        # No ServerSideEncryption here: the bucket's default encryption applies (the quarantine bucket's
        # KMS key, constructs/agent_state.py; SSE-S3 on the cache bucket used when none is configured).
        self._call("quarantine payload put", lambda: self._s3.put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentType="application/octet-stream"))
        return f"s3://{self.bucket}/{key}"

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

    def record_failure(self, record: DecisionRecord, data: bytes) -> None:
        """A work item that failed for good: its bytes to S3, then a `failed` decision (or, if a decision
        was already recorded, a `failure` note on it), so the outcome is explained and can be requeued."""
        where = self.keep(record.shard_id, record.sequence_number, record.sub_sequence_number, data)
        stored, fresh = self.record_decision(DecisionRecord(**{**record.__dict__, "payload_s3": where}))
        if not fresh:
            self._call("audit update", lambda: self._ddb.update_item(
                TableName=self.table, Key={AUDIT_PK: {"S": audit_key(KIND_DECISION, record.decision_id)}},
                UpdateExpression="SET failure = :why, payload_s3 = :where, partition_key = :pk",
                ExpressionAttributeValues={":why": {"S": record.reason}, ":where": {"S": where},
                                           ":pk": {"S": record.partition_key}}))
        log.warning("work item failed for good", extra={"decision_id": record.decision_id, "reason": record.reason,
                                                        "payload_s3": where, "recorded_outcome": stored.outcome})

    def quarantine(self, *, shard_id: str, sequence_number: str, reason: str, detail: str, data: bytes,
                   event_id: str = "", event_type: str = "", worker_id: str = "",
                   sub_sequence: int | None = None, partition_key: str = "", keep_payload: bool = True,
                   payload_error: str = "") -> None:
        """Record a rejected record; the key is its stream position, so a replay overwrites, never duplicates.
        `keep_payload=False` (the S3 write kept failing) records `payload_error` instead of the S3 pointer."""
        preview = data[:_RAW_PREVIEW_BYTES]
        where = self.keep(shard_id, sequence_number, sub_sequence, data) if keep_payload else ""
        position = f"{shard_id}:{sequence_number}" + ("" if sub_sequence is None else f":{sub_sequence}")
        pk = audit_key(KIND_QUARANTINE, position)
        item = ddb.to_item({
            AUDIT_PK: pk, "kind": KIND_QUARANTINE, **index_key(KIND_QUARANTINE, pk),
            "payload_s3": where or None, "partition_key": partition_key or None,
            "payload_error": payload_error or None,
            "at": iso_now(self._clock), "reason": reason, "detail": detail, "shard_id": shard_id,
            "sequence_number": sequence_number, "sub_sequence_number": sub_sequence,
            "event_id": event_id or None, "event_type": event_type or None,
            "size_bytes": len(data), "raw_preview_b64": base64.b64encode(preview).decode(), "worker_id": worker_id,
        })
        self._call("quarantine put", lambda: self._ddb.put_item(TableName=self.table, Item=item))
        log.warning("record quarantined", extra={"shard_id": shard_id, "sequence_number": sequence_number,
                                                 "reason": reason, "detail": detail, "event_id": event_id})
