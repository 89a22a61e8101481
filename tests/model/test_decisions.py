"""parse_decision: what model output becomes a Decision and what is rejected, with which reason."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from agentfleet.spec.decisions import (
    DECISION_SCHEMA,
    DECISION_SCHEMA_VERSION,
    MAX_PARAMS_CHARS,
    Decision,
    InvalidDecision,
    guided_schema,
    parse_decision,
)

VALID = {"action": "notify", "params": {"message": "CPU high"}, "rationale": "new alarm", "confidence": 0.8}


def doc(**changes: object) -> str:
    body = {**VALID, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not ...})


def reason_of(text: str) -> str:
    with pytest.raises(InvalidDecision) as info:
        parse_decision(text)
    assert str(info.value).startswith(info.value.reason + ": ")
    return info.value.reason


def test_valid_decision_parses() -> None:
    decision = parse_decision(json.dumps(VALID))
    assert decision == Decision("notify", {"message": "CPU high"}, "new alarm", 0.8)
    assert decision.to_json() == VALID


def test_surrounding_whitespace_and_code_fence_are_tolerated() -> None:
    assert parse_decision("\n  " + json.dumps(VALID) + "  \n").action == "notify"
    assert parse_decision("```json\n" + json.dumps(VALID) + "\n```").action == "notify"
    assert parse_decision("```\n" + json.dumps(VALID, indent=2) + "\n```\n").confidence == 0.8


def test_integer_confidence_bounds_are_valid() -> None:
    assert parse_decision(doc(confidence=1)).confidence == 1.0
    assert parse_decision(doc(confidence=0)).confidence == 0.0


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("```json\n```", "empty"),
        ('{"action": "notify", ', "invalid_json"),
        ("Sure! " + json.dumps(VALID), "invalid_json"),
        ('{"action": "notify", "action": "ignore", "params": {}, "rationale": "", "confidence": 0.1}', "invalid_json"),
        (doc(confidence=float("nan")), "invalid_json"),
        ("[1, 2]", "not_object"),
        (doc(rationale=...), "missing_field"),
        (doc(params=...), "missing_field"),
        (doc(confidence="0.9"), "wrong_type"),
        (doc(confidence=True), "wrong_type"),
        (doc(action=3), "wrong_type"),
        (doc(params=["x"]), "wrong_type"),
        (doc(params={"nested": {"a": 1}}), "wrong_type"),
        (doc(confidence=1.5), "out_of_range"),
        (doc(confidence=-0.1), "out_of_range"),
        (doc(extra="x"), "unknown_field"),
        (doc(action="Notify Now"), "invalid_value"),
        (doc(rationale="x" * 5000), "oversize"),
        (doc(params={f"k{i}": "v" * 300 for i in range(15)}), "oversize"),
        ("x" * 20_000, "oversize"),
    ],
)
def test_invalid_output_is_rejected_with_reason(text: str, reason: str) -> None:
    assert reason_of(text) == reason


def test_params_size_limit_is_the_serialized_size() -> None:
    fits = {"message": "m" * (MAX_PARAMS_CHARS - 20)}
    assert len(json.dumps(fits, separators=(",", ":"))) <= MAX_PARAMS_CHARS
    assert reason_of(doc(params={"a": "m" * 1990, "b": "m" * 1990, "c": "m" * 100})) == "oversize"


def test_schema_is_versioned_and_guided_schema_is_a_subset() -> None:
    assert DECISION_SCHEMA["$id"].endswith(f"v{DECISION_SCHEMA_VERSION}")
    Draft202012Validator.check_schema(DECISION_SCHEMA)
    tight = guided_schema(("notify", "ignore"))
    Draft202012Validator.check_schema(tight)
    assert tight["properties"]["action"]["enum"] == ["notify", "ignore"]
    # What the guided schema admits, the parser accepts; and it refuses other actions.
    assert not list(Draft202012Validator(tight).iter_errors(VALID))
    assert list(Draft202012Validator(tight).iter_errors({**VALID, "action": "open_ticket"}))
    assert DECISION_SCHEMA["properties"]["action"] != tight["properties"]["action"]  # the original is untouched
