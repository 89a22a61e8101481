"""Event records on the stream: a versioned JSON schema and the validation that quarantines bad ones.

A record is valid when it is at most `max_record_bytes` (default: the stream's own record limit,
1 MiB, MAX_KINESIS_RECORD_BYTES), UTF-8 JSON, an object whose `spec_version` this runtime knows,
matches that version's schema, and its subject fits in a DynamoDB key (MAX_SUBJECT_BYTES). Everything else
becomes a `Rejection` with one of `metric_names.QUARANTINE_REASONS` and a readable detail,
so the worker records it and moves on; validation never raises.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jsonschema

# "Each data record can be up to 1 MiB in size by default" (GetRecords documentation in
# botocore/data/kinesis/2013-12-02/service-2.json, botocore 1.44.8).
MAX_KINESIS_RECORD_BYTES = 1024 * 1024
# The subject is part of the memory table's partition key "<agent>#<subject>"; DynamoDB partition
# keys hold at most 2048 bytes (DynamoDB developer guide, "Constraints in Amazon DynamoDB",
# Constraints.html, "Partition key length"). 1024 bytes of subject leaves room for any agent name.
MAX_SUBJECT_BYTES = 1024

EVENT_SCHEMA_V1: Mapping[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://agentfleet.dev/schemas/event/1.0",
    "title": "Agent Fleet event, spec_version 1.0",
    "type": "object",
    "required": ["spec_version", "id", "type", "subject", "time", "source", "payload"],
    "properties": {
        "spec_version": {"const": "1.0"},
        "id": {"type": "string", "minLength": 1, "maxLength": 256},
        "type": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_.\-/]{0,99}$"},
        "subject": {"type": "string", "minLength": 1, "maxLength": 512},
        "time": {"type": "string", "minLength": 1},
        "source": {"type": "string", "minLength": 1, "maxLength": 256},
        "payload": {"type": "object"},
    },
    "additionalProperties": True,
}
# One schema per spec_version; a new version adds an entry, old producers keep working.
EVENT_SCHEMAS: Mapping[str, Mapping[str, Any]] = {"1.0": EVENT_SCHEMA_V1}
_VALIDATORS = {version: jsonschema.Draft202012Validator(schema) for version, schema in EVENT_SCHEMAS.items()}


@dataclass(frozen=True)
class Event:
    """A validated event; `data` is the whole JSON object as sent."""

    spec_version: str
    id: str
    type: str
    subject: str
    time: str
    source: str
    payload: Mapping[str, Any]

    def utc_time(self) -> str:
        """`time` normalized to UTC with a Z suffix, so it sorts with the runtime's own timestamps."""
        parsed = datetime.fromisoformat(self.time.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def to_json(self) -> dict[str, Any]:
        return {"spec_version": self.spec_version, "id": self.id, "type": self.type, "subject": self.subject,
                "time": self.time, "source": self.source, "payload": dict(self.payload)}


@dataclass(frozen=True)
class Rejection:
    """Why a record was quarantined; `event_id`/`event_type` are filled when they could be read."""

    reason: str  # one of metric_names.QUARANTINE_REASONS
    detail: str
    event_id: str = ""
    event_type: str = ""


def _field(doc: Mapping[str, Any], name: str) -> str:
    value = doc.get(name)
    return value if isinstance(value, str) else ""


def json_object(data: bytes) -> dict[str, Any] | Rejection:
    """A record's bytes as a JSON object, or why not ("invalid_json"); never raises. Every wire format
    (agentfleet.ingest.adapters) reads its records through this, so a bad one reads the same either way."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return Rejection("invalid_json", f"record is not UTF-8: {exc}")
    except json.JSONDecodeError as exc:
        return Rejection("invalid_json", f"record is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except RecursionError:
        return Rejection("invalid_json", "record nests too deeply to parse")
    if not isinstance(doc, dict):
        return Rejection("invalid_json", f"record must be a JSON object, got {type(doc).__name__}")
    return doc


def parse_record(data: bytes, max_record_bytes: int) -> Event | Rejection:
    """Validate one stream record; never raises."""
    if len(data) > max_record_bytes:
        return Rejection("oversize", f"record is {len(data)} bytes, limit is {max_record_bytes}")
    doc = json_object(data)
    return doc if isinstance(doc, Rejection) else validate_document(doc)


def validate_document(doc: Mapping[str, Any]) -> Event | Rejection:
    """Validate an already-decoded kit envelope (schema, subject size, ISO-8601 time); never raises.
    The wire-format adapters call this on the documents they decode or build, so nothing is parsed twice."""
    event_id, event_type = _field(doc, "id"), _field(doc, "type")
    if "spec_version" not in doc:
        return Rejection("missing_field", "required field 'spec_version' is missing", event_id, event_type)
    version = doc["spec_version"]
    if not isinstance(version, str) or version not in _VALIDATORS:
        return Rejection("unknown_version", f"spec_version {version!r} is not one of {sorted(_VALIDATORS)}",
                         event_id, event_type)
    errors = sorted(_VALIDATORS[version].iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        # "missing_field" covers absent and malformed fields alike; the detail says which.
        first = errors[0]
        where = ".".join(str(p) for p in first.absolute_path) or "record"
        return Rejection("missing_field", f"{where}: {first.message}", event_id, event_type)
    subject_bytes = len(doc["subject"].encode("utf-8"))
    if subject_bytes > MAX_SUBJECT_BYTES:
        return Rejection("oversize", f"subject is {subject_bytes} bytes in UTF-8, limit {MAX_SUBJECT_BYTES} "
                         "(it is part of a DynamoDB key, at most 2048 bytes)", event_id, event_type)
    try:
        datetime.fromisoformat(doc["time"].replace("Z", "+00:00"))
    except ValueError:
        return Rejection("missing_field", f"time: {doc['time']!r} is not an ISO-8601 timestamp", event_id, event_type)
    return Event(version, doc["id"], doc["type"], doc["subject"], doc["time"], doc["source"], doc["payload"])
