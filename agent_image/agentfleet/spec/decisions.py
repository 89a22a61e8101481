"""The decision an agent's model returns: versioned JSON schema, dataclass and a strict parser.

Model output is untrusted text. `parse_decision` either returns a `Decision` whose fields are
schema-valid or raises `InvalidDecision` with a short machine-readable `reason`, so the
runtime can record an explained no-op (invalid_output) instead of acting or crashing.
Whether the action is allowed for the agent is the guardrails' job, not the parser's.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from jsonschema import Draft202012Validator

DECISION_SCHEMA_VERSION = "1"
MAX_DECISION_CHARS = 16_000  # whole reply; a real decision is a few hundred characters
MAX_PARAMS_CHARS = 4_000  # params serialized as compact JSON
MAX_TEXT_CHARS = 2_000  # rationale, and each string in params

DECISION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": f"urn:agentfleet:decision:v{DECISION_SCHEMA_VERSION}",
    "title": "Agent decision",
    "type": "object",
    "properties": {
        "action": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,39}$"},
        # Flat scalars only: params become Step Functions input, so nesting buys nothing.
        "params": {
            "type": "object",
            "maxProperties": 16,
            "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$"},
            "additionalProperties": {
                "anyOf": [
                    {"type": "string", "maxLength": MAX_TEXT_CHARS},
                    {"type": ["number", "boolean", "null"]},
                ]
            },
        },
        "rationale": {"type": "string", "maxLength": MAX_TEXT_CHARS},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["action", "params", "rationale", "confidence"],
    # Unknown fields are rejected: a model inventing fields is not following the format.
    "additionalProperties": False,
}

_VALIDATOR = Draft202012Validator(DECISION_SCHEMA)
_FENCE = re.compile(r"^```[A-Za-z]*[ \t]*\n?(.*?)\n?[ \t]*```$", re.DOTALL)
# jsonschema keyword -> our reason; the first matching error decides.
_REASONS = {
    "required": "missing_field",
    "additionalProperties": "unknown_field",
    "type": "wrong_type",
    "anyOf": "wrong_type",
    "minimum": "out_of_range",
    "maximum": "out_of_range",
    "maxLength": "oversize",
    "maxProperties": "oversize",
    "pattern": "invalid_value",
    "propertyNames": "invalid_value",
}
_PRIORITY = ["required", "additionalProperties", "type"]


class InvalidDecision(ValueError):
    """Model output that is not a valid decision; `reason` is short and machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Decision:
    action: str
    params: dict[str, Any]
    rationale: str
    confidence: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def guided_schema(allowed_actions: Sequence[str], max_text_chars: int = 300) -> dict[str, Any]:
    """A tighter schema for a server's guided decoding: the action is one of `allowed_actions`
    and params is exactly {"message": str}. Every document it admits passes `parse_decision`."""
    if not allowed_actions:
        raise ValueError("guided_schema needs at least one allowed action")
    schema = copy.deepcopy(DECISION_SCHEMA)
    props = schema["properties"]
    props["action"] = {"type": "string", "enum": list(allowed_actions)}
    props["params"] = {
        "type": "object",
        "properties": {"message": {"type": "string", "maxLength": max_text_chars}},
        "required": ["message"],
        "additionalProperties": False,
    }
    props["rationale"] = {"type": "string", "maxLength": max_text_chars}
    return schema


def _reject_constant(name: str) -> Any:
    raise InvalidDecision("invalid_json", f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidDecision("invalid_json", f"duplicate key {key!r}")
        out[key] = value
    return out


def _strip(text: str) -> str:
    text = text.strip()
    fenced = _FENCE.match(text)
    return fenced.group(1).strip() if fenced else text


def parse_decision(text: str) -> Decision:
    """Parse one decision; tolerates surrounding whitespace and a ``` code fence, nothing else."""
    if not isinstance(text, str):
        raise InvalidDecision("wrong_type", f"expected text, got {type(text).__name__}")
    if len(text) > MAX_DECISION_CHARS:
        raise InvalidDecision("oversize", f"{len(text)} characters, limit {MAX_DECISION_CHARS}")
    body = _strip(text)
    if not body:
        raise InvalidDecision("empty", "the model returned no text")
    try:
        doc = json.loads(body, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise InvalidDecision("invalid_json", f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(doc, dict):
        raise InvalidDecision("not_object", f"expected a JSON object, got {type(doc).__name__}")
    errors = list(_VALIDATOR.iter_errors(doc))
    if errors:
        errors.sort(key=lambda e: (_PRIORITY.index(e.validator) if e.validator in _PRIORITY else 9, len(e.path)))
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "decision"
        reason = _REASONS.get(str(first.validator), "schema_violation")
        raise InvalidDecision(reason, f"{where}: {first.message[:200]}")
    params_chars = len(json.dumps(doc["params"], separators=(",", ":")))
    if params_chars > MAX_PARAMS_CHARS:
        raise InvalidDecision("oversize", f"params is {params_chars} characters, limit {MAX_PARAMS_CHARS}")
    return Decision(doc["action"], doc["params"], doc["rationale"], float(doc["confidence"]))
