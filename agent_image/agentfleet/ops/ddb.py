"""DynamoDB attribute-value conversion shared by memory, audit and leases (low-level client API)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    """Python values -> attribute values. Floats become Decimal (DynamoDB has no binary floats);
    None values are left out so optional fields do not need NULL handling."""
    return {key: _SERIALIZER.serialize(_decimal(value)) for key, value in values.items() if value is not None}


def _decimal(obj: Any) -> Any:
    """What a JSON round trip with parse_float=Decimal gives, without serializing: this runs on
    every memory and audit write, whose values hold long JSON strings."""
    if obj is None or isinstance(obj, str | int):  # bool is an int
        return obj
    if isinstance(obj, float):
        return Decimal(repr(obj))
    if isinstance(obj, Mapping):
        return {k if isinstance(k, str) else json.dumps(k): _decimal(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_decimal(v) for v in obj]
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def value(python_value: Any) -> dict[str, Any]:
    """One attribute value (for expression values)."""
    return to_item({"v": python_value})["v"]


def _plain(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | set | tuple):
        return [_plain(v) for v in obj]
    return obj


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Attribute values -> plain Python (ints and floats, not Decimal)."""
    return {key: _plain(_DESERIALIZER.deserialize(raw)) for key, raw in item.items()}


def is_conditional_failure(exc: BaseException) -> bool:
    if not isinstance(exc, ClientError):
        return False
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
