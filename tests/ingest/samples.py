"""Published sample events (tests/data/events, sources in SOURCES.md there), read as bytes.

GuardDuty and Security Hub (ASFF) publish their EventBridge envelope with a placeholder where the
finding goes and the finding itself on another page; `spliced` puts the published finding text in
place of the placeholder, changing no other byte of either."""

from __future__ import annotations

from pathlib import Path

EVENTS = Path(__file__).resolve().parent.parent / "data" / "events"
ARRIVAL = "2026-12-01T20:00:00.000Z"
LIMIT = 64 * 1024


def sample(name: str) -> bytes:
    return (EVENTS / name).read_bytes()


def spliced(envelope: str, placeholder: str, finding: str) -> bytes:
    text = sample(envelope).decode("utf-8")
    assert text.count(placeholder) == 1, f"{envelope} must hold {placeholder!r} exactly once"
    return text.replace(placeholder, sample(finding).decode("utf-8").strip()).encode("utf-8")


def guardduty_event() -> bytes:
    return spliced("eventbridge_guardduty_finding_envelope.txt", "{GUARDDUTY_FINDING_JSON_OBJECT}",
                   "guardduty_finding_detail_sumologic.json")


def securityhub_asff_event() -> bytes:
    # The envelope shows `[{ <finding content> }]`: the braces there are the finding's own.
    return spliced("eventbridge_securityhub_findings_imported_envelope.txt",
                   "{\n         <finding content>\n       }", "securityhub_asff_finding_fsbp.json")
