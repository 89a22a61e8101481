"""CloudEvents 1.0 in the JSON event format: the kit's preferred native record.

Source: cloudevents/spec v1.0.2 (github.com/cloudevents/spec @ fc1f6f3), cloudevents/spec.md
"REQUIRED Attributes" (id, source, specversion, type) and "OPTIONAL Attributes" (datacontenttype,
dataschema, subject, time), and cloudevents/formats/json-format.md section 3: `data` holds JSON
(or a string for non-JSON content types), `data_base64` holds binary data, never both; an omitted
OPTIONAL attribute may also be sent as JSON null.

  type    = type (must fit the kit's event type pattern: lower-case, no spaces)
  subject = subject, or source when subject is absent or null (the ordering key needs a value,
            and one source's events then stay ordered)
  time    = time, or the record's Kinesis arrival time when absent or null
  id, source as sent
  payload = the whole CloudEvent as sent (data, datacontenttype and extension attributes included)
"""

from __future__ import annotations

from typing import Any

from agentfleet.ingest.adapters.common import finish, text
from agentfleet.spec.events import Event, Rejection

SPEC_VERSION = "1.0"
REQUIRED = ("id", "source", "specversion", "type")


def is_cloudevent(doc: dict[str, Any]) -> bool:
    return "specversion" in doc


def decode(doc: dict[str, Any], *, arrival_time: str) -> Event | Rejection:
    event_id, event_type = text(doc, "id"), text(doc, "type")
    for name in REQUIRED:
        if not isinstance(doc.get(name), str) or not doc[name]:
            return Rejection("missing_field", f"CloudEvent attribute {name!r} is required and must be a non-empty "
                                              "string", event_id, event_type)
    if doc["specversion"] != SPEC_VERSION:
        return Rejection("unknown_version", f"CloudEvents specversion {doc['specversion']!r} is not "
                                            f"{SPEC_VERSION!r}", event_id, event_type)
    if "data" in doc and "data_base64" in doc:
        return Rejection("missing_field", "CloudEvent has both 'data' and 'data_base64' (JSON format 3.1: mutually "
                                          "exclusive)", event_id, event_type)
    for name in ("subject", "time"):
        if doc.get(name) is not None and not isinstance(doc[name], str):
            return Rejection("missing_field", f"CloudEvent attribute {name!r} must be a string", event_id, event_type)
    return finish(id=doc["id"], type=doc["type"], subject=doc.get("subject") or doc["source"],
                  time=doc.get("time") or arrival_time, source=doc["source"], payload=doc)
