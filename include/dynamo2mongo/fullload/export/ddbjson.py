"""DynamoDB JSON (export lines ``{"Item": {...}}``, Lambda stream events) to wire-format items (B as bytes).

``parse_line`` reads a line with msgspec and checks it in one pass that rewrites only the binary
values; a line that pass does not accept (malformed, or JSON msgspec reads differently from the
standard library, such as a lone surrogate escape) is read again by the reference path below,
which gives the precise reason. So both paths accept the same lines and return the same items.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import msgspec

from dynamo2mongo.fullload.export import MalformedRecord

_PLAIN = {"S": str, "N": str, "BOOL": bool}
_decode = msgspec.json.Decoder().decode


class _Unusual(Exception):
    """The fast pass met something it leaves to the reference path."""


def _b64(text: Any, where: str) -> bytes:
    if not isinstance(text, str):
        raise MalformedRecord(f"{where}: binary must be a base64 string, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as error:  # binascii.Error, or a character outside ASCII
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


def _json_value(attr: dict[str, Any]) -> dict[str, Any]:
    ((kind, inner),) = attr.items()
    if kind == "B":
        return {"B": base64.b64encode(inner).decode()}
    if kind == "BS":
        return {"BS": [base64.b64encode(v).decode() for v in inner]}
    if kind == "M":
        return {"M": {name: _json_value(v) for name, v in inner.items()}}
    if kind == "L":
        return {"L": [_json_value(v) for v in inner]}
    return attr


def item_to_json(item: dict[str, Any]) -> dict[str, Any]:
    """A wire-format item in DynamoDB JSON (binary as base64 text): the inverse of ``item_from_json``,
    as exports and Lambda stream events carry items."""
    return {name: _json_value(value) for name, value in item.items()}


def item_from_json(attributes: Any, where: str = "item") -> dict[str, Any]:
    """Attributes in DynamoDB JSON (binary as base64 text) as a wire-format item."""
    if not isinstance(attributes, dict):
        raise MalformedRecord(f"{where}: expected a map of attributes, got {type(attributes).__name__}")
    return {name: _value(value, name) for name, value in attributes.items()}


def _binary(text: Any) -> bytes:
    if type(text) is not str:
        raise _Unusual
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise _Unusual from None


def _check_attribute(attr: Any) -> None:
    """What _value checks, in place: binary values become bytes, anything else is left as it is."""
    if type(attr) is not dict or len(attr) != 1:
        raise _Unusual
    ((kind, inner),) = attr.items()
    if kind == "N" or kind == "S":
        if type(inner) is not str:
            raise _Unusual
    elif kind == "M":
        if type(inner) is not dict:
            raise _Unusual
        _check_map(inner)
    elif kind == "L":
        if type(inner) is not list:
            raise _Unusual
        for value in inner:
            _check_attribute(value)
    elif kind == "BOOL":
        if type(inner) is not bool:
            raise _Unusual
    elif kind == "NULL":
        if inner is not True:
            raise _Unusual
    elif kind == "SS" or kind == "NS":
        if type(inner) is not list:
            raise _Unusual
        for value in inner:
            if type(value) is not str:
                raise _Unusual
    elif kind == "B":
        attr["B"] = _binary(inner)
    elif kind == "BS":
        if type(inner) is not list:
            raise _Unusual
        attr["BS"] = [_binary(value) for value in inner]
    else:
        raise _Unusual


def _check_map(attributes: dict) -> None:
    for attr in attributes.values():
        # Strings and numbers are most values: checked here without the call.
        if type(attr) is dict and len(attr) == 1:
            text = attr.get("S") or attr.get("N")
            if type(text) is str:
                continue
        _check_attribute(attr)


def parse_line(line: bytes | str) -> dict[str, Any]:
    try:
        record = _decode(line)
        item = record["Item"]
        if type(record) is dict and type(item) is dict:
            _check_map(item)
            return item
    except (msgspec.DecodeError, _Unusual, KeyError, TypeError, RecursionError):
        pass
    return _parse_line_checked(line)


def _parse_line_checked(line: bytes | str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedRecord(f"not valid JSON: {error}") from None
    if not isinstance(record, dict) or not isinstance(record.get("Item"), dict):
        raise MalformedRecord('expected an object {"Item": {...}}')
    return item_from_json(record["Item"])
