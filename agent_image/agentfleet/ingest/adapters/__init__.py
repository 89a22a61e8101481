"""Wire formats in: recognise a stream record's shape and turn it into the kit's `Event`.

`decode(data, arrival_time=..., max_record_bytes=...)` returns an `Event`, a `Rejection`
(quarantined with a reason) or a `Dropped` (deliberately not an event; counted). It never raises.

Recognition order (first match wins; each adapter's module says how it derives type, subject, time):
  0. size       more than max_record_bytes              -> Rejection "oversize"
  1. gzip       starts with 1f 8b                       -> inflated (at most 8 x max_record_bytes),
                                                           then recognised like any record (2-6)
  2. logs       object with messageType and logGroup    -> CloudWatch Logs subscription (logs.py)
  3. cloudevent object with specversion                 -> CloudEvents 1.0 JSON (cloudevents.py)
  4. kit        object with spec_version                -> the kit envelope, spec.events.validate_document
  5. eventbridge object with detail-type and source     -> EventBridge event (eventbridge.py)
  6. anything else: not UTF-8 JSON -> "invalid_json"; JSON but not an object -> "invalid_json";
     an object none of the above knows -> UNKNOWN_SHAPE
CloudEvents is checked before the kit envelope and EventBridge, so a CloudEvent that happens to carry
a `source` is never read as EventBridge. GitHub webhooks arrive as CloudEvents (ingest/webhook.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agentfleet.ingest.adapters import cloudevents, eventbridge, logs
from agentfleet.ingest.adapters.common import UNKNOWN_SHAPE, Dropped
from agentfleet.spec.events import Event, Rejection, json_object, validate_document

__all__ = ["ADAPTERS", "UNKNOWN_SHAPE", "Decoded", "Dropped", "arrival_iso", "decode", "decode_named"]

Decoded = Event | Rejection | Dropped
ADAPTERS = ("logs", "cloudevents", "kit", "eventbridge", "unknown")  # names decode_named reports
INFLATE_FACTOR = 8  # a gzip record may inflate to this many times max_record_bytes (bomb guard)


def decode(data: bytes, *, arrival_time: str, max_record_bytes: int) -> Decoded:
    """One stream record -> Event | Rejection | Dropped; never raises."""
    return decode_named(data, arrival_time=arrival_time, max_record_bytes=max_record_bytes)[1]


def decode_named(data: bytes, *, arrival_time: str, max_record_bytes: int) -> tuple[str, Decoded]:
    """Like `decode`, plus the name of the adapter that read the record (one of ADAPTERS), for
    per-adapter counts."""
    if len(data) > max_record_bytes:
        return "unknown", Rejection("oversize", f"record is {len(data)} bytes, limit is {max_record_bytes}")
    if data[:2] == logs.GZIP_MAGIC:
        inflated = logs.inflate(data, INFLATE_FACTOR * max_record_bytes)
        if isinstance(inflated, Rejection):
            return "logs", inflated
        data = inflated
    doc = json_object(data)
    if isinstance(doc, Rejection):
        return "unknown", doc
    if logs.is_logs(doc):
        return "logs", logs.decode(doc)
    if cloudevents.is_cloudevent(doc):
        return "cloudevents", cloudevents.decode(doc, arrival_time=arrival_time)
    if "spec_version" in doc:
        # The kit's own envelope, already decoded (the raw record passed the size check above).
        return "kit", validate_document(doc)
    if eventbridge.is_eventbridge(doc):
        return "eventbridge", eventbridge.decode(doc)
    keys = ", ".join(sorted(doc)[:8])
    return "unknown", Rejection(UNKNOWN_SHAPE, f"JSON object of no known shape (keys: {keys}); expected a "
                                               "CloudEvent, an EventBridge event, a CloudWatch Logs record or "
                                               "a kit envelope", _str(doc, "id"), _str(doc, "type"))


def arrival_iso(approximate_arrival: datetime | float) -> str:
    """A Kinesis record's ApproximateArrivalTimestamp (boto3 gives a datetime; epoch seconds are
    accepted too) as the ISO-8601 UTC `arrival_time` decode expects."""
    moment = (approximate_arrival if isinstance(approximate_arrival, datetime)
              else datetime.fromtimestamp(approximate_arrival, tz=UTC))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _str(doc: dict[str, Any], name: str) -> str:
    value = doc.get(name)
    return value if isinstance(value, str) else ""
