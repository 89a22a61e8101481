"""Put chosen quarantined or failed records back on the stream, once their cause is fixed.

    python -m agentfleet.entrypoints.requeue [--id PK ...] [--reason TEXT] [--since ISO] [--until ISO]
                                             [--execute] [--again]

Selects audit items that kept their record's bytes in S3 (`payload_s3`): quarantine records
and `failed` decisions. `--id` takes audit keys as stored (`quarantine#<shard>:<seq>` or
`decision#<id>`); `--reason` matches a substring of the reason; `--since`/`--until` bound the
audit time (ISO-8601 UTC, as in `at`). Without `--execute` it only lists what it would do (a
dry run). With it, each record's bytes go back with PutRecord under the original partition key,
and the audit item is marked `requeued_at`, so a second run skips it unless `--again`.
A requeued record is a new stream record: it gets a new sequence number, so new decision ids.
Settings (stream, audit table) resolve as for the worker (AGENTFLEET_CONFIG, AGENTFLEET_*).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from agentfleet.act.audit import iso_now, list_kind
from agentfleet.ops import logs
from agentfleet.ops.aws import read_ssm_parameter
from agentfleet.spec.settings import Settings, resolve
from agentfleet.spec.tables import AUDIT_PK, KIND_DECISION, KIND_QUARANTINE

log = logs.get("agentfleet.entrypoints.requeue")


def select(items: list[dict[str, Any]], *, ids: Sequence[str] = (), reason: str = "",
           again: bool = False) -> list[dict[str, Any]]:
    """The items to requeue: bytes kept, matching every given filter, not requeued before (unless `again`)."""
    chosen = []
    for item in items:
        if not item.get("payload_s3"):
            continue
        if item.get("kind") == KIND_DECISION and item.get("outcome") != "failed" and not item.get("failure"):
            continue
        if ids and item[AUDIT_PK] not in ids:
            continue
        if reason and reason not in f"{item.get('reason', '')} {item.get('failure', '')}":
            continue
        if item.get("requeued_at") and not again:
            continue
        chosen.append(item)
    return chosen


def _bytes(s3: Any, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def requeue(settings: Settings, clients: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run the selection (and, with --execute, the puts); returns one report row per item."""
    ddb = clients("dynamodb")
    items = [*list_kind(ddb, settings.audit_table, KIND_QUARANTINE, since=args.since, until=args.until),
             *list_kind(ddb, settings.audit_table, KIND_DECISION, since=args.since, until=args.until)]
    rows = []
    for item in select(items, ids=args.id, reason=args.reason, again=args.again):
        row = {"id": item[AUDIT_PK], "reason": item.get("reason"), "payload_s3": item["payload_s3"],
               "partition_key": item.get("partition_key", ""), "action": "would requeue"}
        if args.execute:
            data = _bytes(clients("s3"), item["payload_s3"])
            key = item.get("partition_key") or item.get("subject") or item[AUDIT_PK]
            put = clients("kinesis").put_record(StreamName=settings.stream_name, Data=data, PartitionKey=key)
            ddb.update_item(TableName=settings.audit_table, Key={AUDIT_PK: {"S": item[AUDIT_PK]}},
                            UpdateExpression="SET requeued_at = :now, requeued_as = :seq",
                            ExpressionAttributeValues={":now": {"S": iso_now()},
                                                       ":seq": {"S": f"{put['ShardId']}:{put['SequenceNumber']}"}})
            row.update(action="requeued", shard_id=put["ShardId"], sequence_number=put["SequenceNumber"])
        rows.append(row)
    return rows


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agentfleet.entrypoints.requeue", description=__doc__.split("\n")[0])
    p.add_argument("--id", action="append", default=[], help="audit key (pk) to requeue; repeatable")
    p.add_argument("--reason", default="", help="only items whose reason contains this text")
    p.add_argument("--since", default="", help="only items recorded at or after this ISO-8601 UTC time")
    p.add_argument("--until", default="", help="only items recorded at or before this ISO-8601 UTC time")
    p.add_argument("--execute", action="store_true", help="put the records back (default: dry run)")
    p.add_argument("--again", action="store_true", help="include items already requeued once")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = resolve(ssm_get=read_ssm_parameter)
    if not (settings.stream_name and settings.audit_table):
        print("requeue: settings need stream_name and audit_table (AGENTFLEET_CONFIG)", file=sys.stderr)
        return 2
    from agentfleet.ops.aws import client

    rows = requeue(settings, client, args)
    for row in rows:
        print(json.dumps(row, sort_keys=True))
    print(f"{len(rows)} record(s) {'requeued' if args.execute else 'selected (dry run; add --execute)'}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
