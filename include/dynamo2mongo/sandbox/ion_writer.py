"""Items as the Ion text DynamoDB's ION export writes (sandbox only: moto writes no Ion)."""

from __future__ import annotations

import base64
import decimal
import re
from typing import Any

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEYWORDS = {"true", "false", "null", "nan"}
_SET_ANNOTATIONS = {"SS": "$dynamodb_SS", "NS": "$dynamodb_NS", "BS": "$dynamodb_BS"}


def _escape(text: str, quote: str) -> str:
    out = []
    for char in text:
        code = ord(char)
        if char == quote or char == "\\":
            out.append("\\" + char)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(char)
    return "".join(out)


def _symbol(name: str) -> str:
    if _IDENTIFIER.fullmatch(name) and name not in _KEYWORDS:
        return name
    return "'" + _escape(name, "'") + "'"


def _decimal(text: str) -> str:
    sign, digits, exponent = decimal.Decimal(text).as_tuple()
    coefficient = ("-" if sign else "") + "".join(map(str, digits))
    return f"{coefficient}." if exponent == 0 else f"{coefficient}d{exponent}"


def _blob(data: bytes) -> str:
    return "{{" + base64.b64encode(data).decode("ascii") + "}}"


def _value(attr: dict[str, Any]) -> str:
    ((kind, inner),) = attr.items()
    if kind == "S":
        return '"' + _escape(inner, '"') + '"'
    if kind == "N":
        return _decimal(inner)
    if kind == "B":
        return _blob(inner)
    if kind == "BOOL":
        return "true" if inner else "false"
    if kind == "NULL":
        return "null"
    if kind == "M":
        return "{" + ",".join(f"{_symbol(k)}:{_value(v)}" for k, v in inner.items()) + "}"
    if kind == "L":
        return "[" + ",".join(_value(v) for v in inner) + "]"
    element = {"SS": lambda v: _value({"S": v}), "NS": _decimal, "BS": _blob}[kind]
    return f"{_SET_ANNOTATIONS[kind]}::[" + ",".join(element(v) for v in inner) + "]"


def dump_line(item: dict[str, Any]) -> str:
    """One ``{Item:{...}}`` line (without the newline)."""
    return "{Item:" + _value({"M": item}) + "}"
