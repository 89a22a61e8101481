"""Pieces every adapter shares: the `Dropped` outcome, the new quarantine reason, and `finish`,
which turns an adapter's fields into a kit `Event` through the kit's own validation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agentfleet.spec.events import Event, Rejection, validate_document

# A JSON object none of the adapters recognises (one of metric_names.QUARANTINE_REASONS).
UNKNOWN_SHAPE = "unknown_shape"
# The kit envelope these adapters produce. Every adapter's output is a kit event (Event.to_json()
# is again a valid record for parse_record), so replays and quarantine re-puts keep working.
KIT_SPEC_VERSION = "1.0"


@dataclass(frozen=True)
class Dropped:
    """A record that is deliberately not an event (a CloudWatch Logs CONTROL_MESSAGE): counted, not
    quarantined, and its checkpoint moves on."""

    reason: str
    detail: str


def finish(*, id: str, type: str, subject: str, time: str, source: str, payload: dict[str, Any]) -> Event | Rejection:
    """Validate the adapter's fields exactly as a kit envelope record is validated (schema, lengths,
    type pattern, ISO-8601 time), so every adapter obeys the same rules as spec_version 1.0. No size
    check: the raw record passed it, and its decoded form may legitimately be larger."""
    return validate_document({"spec_version": KIT_SPEC_VERSION, "id": id, "type": type, "subject": subject,
                              "time": time, "source": source, "payload": payload})


def text(doc: Any, *path: str | int) -> str:
    """The string at `path` in nested dicts/lists, or "" when any step is missing or not a string."""
    node = doc
    for step in path:
        if not isinstance(node, (dict, list)):
            return ""
        try:
            node = node[step]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return ""
    return node if isinstance(node, str) else ""


def slug(value: str) -> str:
    """Lower-case, every run of characters outside [a-z0-9] becomes one '_' (fits the event type pattern)."""
    return re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_")


def iso_from_millis(millis: int | float) -> str:
    """Epoch milliseconds (CloudWatch Logs timestamps) as ISO-8601 UTC with a Z suffix."""
    moment = datetime.fromtimestamp(millis / 1000.0, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
