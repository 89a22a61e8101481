"""What the emulator itself recorded: the stream read back, the audit table, the actions' executions.

The local fleet's summary is computed from these, never from worker counters, so a worker
that lies or dies cannot make the numbers look better than what AWS (here, the emulator) holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agentfleet.ops import ddb
from agentfleet.spec.tables import KIND_DECISION, KIND_OUTCOME, KIND_QUARANTINE


@dataclass(frozen=True)
class StreamRecord:
    shard_id: str
    sequence_number: str
    arrival: float  # epoch seconds (ApproximateArrivalTimestamp)
    size: int
    event_id: str  # "" when the record is not a JSON object with a string id


@dataclass
class Audit:
    decisions: list[dict[str, Any]] = field(default_factory=list)
    quarantines: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Snapshot:
    stream: list[StreamRecord]
    audit: Audit
    executions: list[dict[str, Any]]  # name, status, startDate, stopDate (epoch seconds)
    memory_items: int


def event_id_of(data: bytes) -> str:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return ""
    value = doc.get("id") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else ""


def read_stream(kinesis: Any, stream_name: str) -> list[StreamRecord]:
    """Every record in every shard, from TRIM_HORIZON to the tip."""
    shards, token = [], None
    while True:
        page = kinesis.list_shards(NextToken=token) if token else kinesis.list_shards(StreamName=stream_name)
        shards += [s["ShardId"] for s in page["Shards"]]
        token = page.get("NextToken")
        if not token:
            break
    out = []
    for shard_id in shards:
        iterator = kinesis.get_shard_iterator(StreamName=stream_name, ShardId=shard_id,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            for rec in page["Records"]:
                data = rec["Data"]
                out.append(StreamRecord(shard_id, rec["SequenceNumber"], rec["ApproximateArrivalTimestamp"].timestamp(),
                                        len(data), event_id_of(data)))
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return out


def scan_all(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**kwargs)
        items += [ddb.from_item(item) for item in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def read_audit(dynamodb: Any, table: str) -> Audit:
    audit = Audit()
    by_kind = {KIND_DECISION: audit.decisions, KIND_QUARANTINE: audit.quarantines, KIND_OUTCOME: audit.outcomes}
    for item in scan_all(dynamodb, table):
        bucket = by_kind.get(str(item.get("kind", "")))
        if bucket is not None:
            bucket.append(item)
    return audit


def list_executions(sfn: Any, state_machine_arn: str) -> list[dict[str, Any]]:
    out, token = [], None
    while True:
        kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn, "maxResults": 1000}
        if token:
            kwargs["nextToken"] = token
        page = sfn.list_executions(**kwargs)
        for ex in page["executions"]:
            stop = ex.get("stopDate")
            out.append({"name": ex["name"], "status": ex["status"], "startDate": ex["startDate"].timestamp(),
                        "stopDate": stop.timestamp() if stop else None, "executionArn": ex["executionArn"]})
        token = page.get("nextToken")
        if not token:
            return out


def count_items(dynamodb: Any, table: str) -> int:
    total, kwargs = 0, {"TableName": table, "Select": "COUNT"}
    while True:
        page = dynamodb.scan(**kwargs)
        total += int(page.get("Count", 0))
        if "LastEvaluatedKey" not in page:
            return total
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def snapshot(clients: Any, names: dict[str, str]) -> Snapshot:
    """Read everything once; `names` holds stream_name, audit_table, memory_table, state_machine_arn."""
    return Snapshot(
        stream=read_stream(clients("kinesis"), names["stream_name"]),
        audit=read_audit(clients("dynamodb"), names["audit_table"]),
        executions=list_executions(clients("stepfunctions"), names["state_machine_arn"]),
        memory_items=count_items(clients("dynamodb"), names["memory_table"]),
    )
