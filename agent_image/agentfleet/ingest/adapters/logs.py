"""CloudWatch Logs subscription records: gzip-compressed JSON, one batch of log events per record.

Wire format (CloudWatch Logs User Guide, "Subscription filters with Amazon Kinesis Data Streams",
awsdocs/amazon-cloudwatch-logs-user-guide doc_source/SubscriptionFilters.md @ c0b0d71, 2023-06):
the Kinesis record's Data is gzip; inflated it is JSON with owner, logGroup, logStream,
subscriptionFilters, messageType and logEvents[{id, timestamp (epoch ms), message}].
messageType is DATA_MESSAGE, or CONTROL_MESSAGE "mainly for checking if the destination is
reachable" -- those are dropped and counted, never quarantined.

One event per record (the batch): the agent sees the log lines together, as the service grouped
them, and a busy log group costs one decision per batch rather than one per line.
  type    = "logs.batch"
  subject = the log group (one group's batches stay ordered on the stream and in the agent)
  time    = the first log event's timestamp
  id      = the first log event's id (CloudWatch Logs gives every log event a unique id, so a
            redelivered batch keeps its id)
  source  = "aws.logs"
  payload = the inflated document as sent
"""

from __future__ import annotations

import zlib
from typing import Any

from agentfleet.ingest.adapters.common import Dropped, finish, iso_from_millis, text
from agentfleet.spec.events import Event, Rejection

GZIP_MAGIC = b"\x1f\x8b"  # RFC 1952 section 2.3.1: ID1 = 31, ID2 = 139
EVENT_TYPE = "logs.batch"
SOURCE = "aws.logs"


def inflate(data: bytes, limit: int) -> bytes | Rejection:
    """Gunzip at most `limit` bytes; a bigger, truncated or corrupt stream is a Rejection (never raises)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # 16 + MAX_WBITS: expect a gzip header
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        return Rejection("invalid_json", f"gzip record is corrupt: {exc}")
    if len(out) > limit:
        return Rejection("oversize", f"gzip record inflates to more than {limit} bytes")
    if not inflater.eof:
        return Rejection("invalid_json", "gzip record is truncated (stream ends before its trailer)")
    return out


def is_logs(doc: dict[str, Any]) -> bool:
    return "messageType" in doc and "logGroup" in doc


def decode(doc: dict[str, Any]) -> Event | Rejection | Dropped:
    kind = doc.get("messageType")
    if kind == "CONTROL_MESSAGE":
        return Dropped("control_message", f"CloudWatch Logs control message for {text(doc, 'logGroup')!r}")
    if kind != "DATA_MESSAGE":
        return Rejection("missing_field", f"messageType: {kind!r} is neither DATA_MESSAGE nor CONTROL_MESSAGE")
    group, events = text(doc, "logGroup"), doc.get("logEvents")
    if not group:
        return Rejection("missing_field", "logGroup: missing or not a string")
    if not isinstance(events, list) or not events or not isinstance(events[0], dict):
        return Rejection("missing_field", "logEvents: a DATA_MESSAGE needs at least one log event")
    first = events[0]
    stamp = first.get("timestamp")
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
        return Rejection("missing_field", "logEvents[0].timestamp: missing or not epoch milliseconds")
    try:
        when = iso_from_millis(stamp)
    except (OverflowError, OSError, ValueError):
        return Rejection("missing_field", f"logEvents[0].timestamp: {stamp!r} is out of range")
    event_id = text(first, "id") or f"{group}/{text(doc, 'logStream')}/{stamp}"
    return finish(id=event_id, type=EVENT_TYPE, subject=group, time=when, source=SOURCE, payload=doc)
