"""EventBridge events: the envelope every AWS service event arrives in through an EventBridge rule.

Envelope fields (version, id, detail-type, source, account, time, region, resources, detail) as in
the services' published sample events (see tests/data/events/SOURCES.md). A record is recognised
by `detail-type` and `source`; one without a `detail` object is rejected (missing_field).

  type    = the service rule's type (eventbridge_services.RULES), else the generic
            "aws.<source without 'aws.'>.<detail-type slug>" ("<source slug>.<detail-type slug>"
            for custom sources), cut to the kit's 100 characters
  subject = the service rule's subject, else the first resource ARN, else the account
  time    = the envelope's time
  id, source as sent; payload = the whole event as sent
"""

from __future__ import annotations

from typing import Any

from agentfleet.ingest.adapters.common import finish, slug, text
from agentfleet.ingest.adapters.eventbridge_services import RULES
from agentfleet.spec.events import Event, Rejection

_TYPE_MAX = 100  # spec.events EVENT_SCHEMA_V1: type pattern allows 1 + 99 characters


def is_eventbridge(doc: dict[str, Any]) -> bool:
    return "detail-type" in doc and "source" in doc


def generic_type(source: str, detail_type: str) -> str:
    prefix = f"aws.{slug(source[4:])}" if source.startswith("aws.") else slug(source)
    return f"{prefix}.{slug(detail_type)}"[:_TYPE_MAX].rstrip("._")


def decode(doc: dict[str, Any]) -> Event | Rejection:
    event_id, source, detail_type = text(doc, "id"), text(doc, "source"), text(doc, "detail-type")
    for name, value in (("id", event_id), ("source", source), ("detail-type", detail_type), ("time", text(doc, "time"))):
        if not value:
            return Rejection("missing_field", f"EventBridge event field {name!r} is missing or not a string", event_id)
    detail = doc.get("detail")
    if not isinstance(detail, dict):
        return Rejection("missing_field", f"EventBridge event {detail_type!r} has no 'detail' object", event_id)
    rule = RULES.get((source, detail_type))
    if rule is not None:
        event_type, subject = rule(doc, detail)
    else:
        event_type, subject = generic_type(source, detail_type), text(doc, "resources", 0)
    return finish(id=event_id, type=event_type, subject=subject or text(doc, "account") or source,
                  time=doc["time"], source=source, payload=doc)
