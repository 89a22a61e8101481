"""What the emulator itself recorded: the stream read back, the audit table, the actions' executions.

The local fleet's summary is computed from these, never from worker counters, so a worker
that lies or dies cannot make the numbers look better than what AWS (here, the emulator) holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agentfleet.ingest.adapters import Decoded, arrival_iso, decode_named
from agentfleet.ingest.kpl import deaggregate
from agentfleet.ops import ddb
from agentfleet.spec.events import MAX_KINESIS_RECORD_BYTES, Event, Rejection
from agentfleet.spec.tables import KIND_DECISION, KIND_OUTCOME, KIND_QUARANTINE


@dataclass(frozen=True)
class StreamRecord:
    """One user record read back (a KPL-aggregated stream record gives one per sub-record)."""

    shard_id: str
    sequence_number: str
    arrival: float  # epoch seconds (ApproximateArrivalTimestamp)
    size: int
    event_id: str  # the decoded event's id (any wire format); "" for a dropped or unparseable record
    data: bytes = b""
    sub_sequence: int | None = None

    @property
    def position(self) -> tuple[str, str, int | None]:
        return self.shard_id, self.sequence_number, self.sub_sequence

    def decoded(self, max_record_bytes: int = MAX_KINESIS_RECORD_BYTES) -> tuple[str, Decoded]:
        """(adapter name, Event | Rejection | Dropped), decoded exactly as the workers decode it
        (agentfleet.ingest.adapters, with this record's arrival time for events that carry none)."""
        return decode_named(self.data, arrival_time=arrival_iso(self.arrival), max_record_bytes=max_record_bytes)


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


def event_id_of(data: bytes, arrival: float = 0.0, max_record_bytes: int = MAX_KINESIS_RECORD_BYTES) -> str:
    """The id the workers see for this record: the decoded event's id whatever its wire format (a
    CloudWatch Logs batch's first log event id, an EventBridge or CloudEvent id), the id a rejected
    record still names, or "" (a dropped control message, unparseable bytes)."""
    _, decoded = decode_named(data, arrival_time=arrival_iso(arrival), max_record_bytes=max_record_bytes)
    if isinstance(decoded, Event):
        return decoded.id
    return decoded.event_id if isinstance(decoded, Rejection) else ""


def read_stream(kinesis: Any, stream_name: str, max_record_bytes: int = MAX_KINESIS_RECORD_BYTES) -> list[StreamRecord]:
    """Every record in every shard, from TRIM_HORIZON to the tip. An empty page is not the end:
    GetRecords may return nothing while records lie further on ("It might take multiple calls to get
    to a portion of the shard that contains records", GetRecords documentation in botocore/data/
    kinesis/2013-12-02/service-2.json), so a shard is read until its iterator ends (closed shard)
    or a page is empty with MillisBehindLatest 0 (at the tip)."""
    shards, kwargs = [], {"StreamName": stream_name}
    while True:  # ListShards paged by NextToken alone (see ingest/balance.py)
        page = kinesis.list_shards(**kwargs)
        shards += [s["ShardId"] for s in page["Shards"]]
        if not page.get("NextToken"):
            break
        kwargs = {"NextToken": page["NextToken"]}
    out = []
    for shard_id in shards:
        iterator = kinesis.get_shard_iterator(StreamName=stream_name, ShardId=shard_id,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            for rec in page["Records"]:
                arrival = rec["ApproximateArrivalTimestamp"].timestamp()
                for user in deaggregate(bytes(rec["Data"]), str(rec.get("PartitionKey", ""))):
                    out.append(StreamRecord(shard_id, rec["SequenceNumber"], arrival, len(user.data),
                                            event_id_of(user.data, arrival, max_record_bytes), user.data,
                                            user.sub_sequence))
            if not page["Records"] and int(page.get("MillisBehindLatest", 0) or 0) == 0:
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


def list_executions(sfn: Any, state_machine_arn: str, *, inputs: bool = False) -> list[dict[str, Any]]:
    """Executions (name, status, dates); with `inputs`, each one's input document too (DescribeExecution)."""
    out, token = [], None
    while True:
        kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn, "maxResults": 1000}
        if token:
            kwargs["nextToken"] = token
        page = sfn.list_executions(**kwargs)
        for ex in page["executions"]:
            stop = ex.get("stopDate")
            row = {"name": ex["name"], "status": ex["status"], "startDate": ex["startDate"].timestamp(),
                   "stopDate": stop.timestamp() if stop else None, "executionArn": ex["executionArn"]}
            if inputs:
                described = sfn.describe_execution(executionArn=ex["executionArn"])
                row["input"] = json.loads(described.get("input") or "{}")
            out.append(row)
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


def snapshot(clients: Any, names: dict[str, str], max_record_bytes: int = MAX_KINESIS_RECORD_BYTES) -> Snapshot:
    """Read everything once; `names` holds stream_name, audit_table, memory_table, state_machine_arn."""
    return Snapshot(
        stream=read_stream(clients("kinesis"), names["stream_name"], max_record_bytes),
        audit=read_audit(clients("dynamodb"), names["audit_table"]),
        executions=list_executions(clients("stepfunctions"), names["state_machine_arn"], inputs=True),
        memory_items=count_items(clients("dynamodb"), names["memory_table"]),
    )
