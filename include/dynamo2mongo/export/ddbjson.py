"""DynamoDB JSON (export lines ``{"Item": {...}}``, Lambda stream events) to wire-format items (B as bytes)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from dynamo2mongo.export import MalformedRecord

_PLAIN = {"S": str, "N": str, "BOOL": bool}


def _b64(text: Any, where: str) -> bytes:
    if not isinstance(text, str):
        raise MalformedRecord(f"{where}: binary must be a base64 string, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as error:
        raise MalformedRecord(f"{where}: invalid base64 ({error})") from None


def _value(attr: Any, where: str) -> dict[str, Any]:
    if not isinstance(attr, dict) or len(attr) != 1:
        raise MalformedRecord(f"{where}: an attribute value needs exactly one type key, got {str(attr)[:80]}")
    ((kind, inner),) = attr.items()
    expected = _PLAIN.get(kind)
    if expected is not None:
        if type(inner) is not expected:
            raise MalformedRecord(f"{where}: {kind} value must be {expected.__name__}, got {type(inner).__name__}")
        return attr
    if kind == "M":
        if not isinstance(inner, dict):
            raise MalformedRecord(f"{where}: M value must be an object")
        return {"M": {name: _value(value, f"{where}.{name}") for name, value in inner.items()}}
    if kind == "L":
        if not isinstance(inner, list):
            raise MalformedRecord(f"{where}: L value must be an array")
        return {"L": [_value(value, f"{where}[{i}]") for i, value in enumerate(inner)]}
    if kind == "NULL":
        if inner is not True:
            raise MalformedRecord(f"{where}: NULL value must be true")
        return attr
    if kind == "B":
        return {"B": _b64(inner, where)}
    if kind in ("SS", "NS", "BS"):
        if not isinstance(inner, list):
            raise MalformedRecord(f"{where}: {kind} value must be an array")
        if kind == "BS":
            return {"BS": [_b64(v, where) for v in inner]}
        if not all(isinstance(v, str) for v in inner):
            raise MalformedRecord(f"{where}: {kind} elements must be strings")
        return attr
    raise MalformedRecord(f"{where}: unknown DynamoDB type {kind!r}")


def item_from_json(attributes: Any, where: str = "item") -> dict[str, Any]:
    """Attributes in DynamoDB JSON (binary as base64 text) as a wire-format item."""
    if not isinstance(attributes, dict):
        raise MalformedRecord(f"{where}: expected a map of attributes, got {type(attributes).__name__}")
    return {name: _value(value, name) for name, value in attributes.items()}


def parse_line(line: bytes | str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedRecord(f"not valid JSON: {error}") from None
    if not isinstance(record, dict) or not isinstance(record.get("Item"), dict):
        raise MalformedRecord('expected an object {"Item": {...}}')
    return item_from_json(record["Item"])
