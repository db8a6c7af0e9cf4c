"""Canonical form of a DynamoDB item, for comparing and hashing items from either side.

DynamoDB compares numbers by value and sets without order, so the canonical form spells every
number in one way and sorts set elements; everything else is kept as it is.
"""

from __future__ import annotations

import decimal
import hashlib
import re
from typing import Any

import msgspec

_CONTEXT = decimal.Context(prec=40)
# Integers already in their one spelling (no sign on zero, no leading zeros, no exponent): the
# common case, answered without building a Decimal.
_PLAIN_INTEGER = re.compile(r"-?[1-9][0-9]{0,38}|0")
# Sorted keys and the same bytes as json.dumps(sort_keys=True, separators=(",", ":"),
# ensure_ascii=False) for these values (tests/unit/test_canonical.py proves it), five times faster.
_ENCODER = msgspec.json.Encoder(order="sorted")


def canonical_number(text: str) -> str:
    if _PLAIN_INTEGER.fullmatch(text):
        return text
    value = _CONTEXT.create_decimal(text)
    if value == 0:
        return "0"
    if value == value.to_integral_value():
        return str(int(value))
    return str(value.normalize(_CONTEXT))


def _canonical_value(value: dict[str, Any]) -> dict[str, Any]:
    ((kind, inner),) = value.items()
    if kind == "N":
        return {"N": canonical_number(inner)}
    if kind == "NS":
        numbers = sorted((_CONTEXT.create_decimal(n) for n in inner))
        return {"NS": [canonical_number(str(n)) for n in numbers]}
    if kind in ("SS", "BS"):
        return {kind: sorted(inner)}
    if kind == "B":
        return {"B": bytes(inner)}
    if kind == "M":
        return {"M": canonical_item(inner)}
    if kind == "L":
        return {"L": [_canonical_value(v) for v in inner]}
    return {kind: inner}


def canonical_item(item: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The item with numbers in one spelling and set elements sorted (wire format in, wire format out)."""
    return {name: _canonical_value(value) for name, value in item.items()}


def _hex(value: Any) -> dict[str, str]:
    return {"$b": bytes(value).hex()}


def _hashable_value(value: dict[str, Any]) -> dict[str, Any]:
    """The canonical value in a JSON-encodable form (binary as hex), built in one pass."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return value
    if kind == "N":
        return {"N": canonical_number(inner)}
    if kind == "M":
        return {"M": {name: _hashable_value(v) for name, v in inner.items()}}
    if kind == "L":
        return {"L": [_hashable_value(v) for v in inner]}
    if kind == "B":
        return {"B": _hex(inner)}
    if kind == "NS":
        return {"NS": [canonical_number(str(n)) for n in sorted(_CONTEXT.create_decimal(n) for n in inner)]}
    if kind == "SS":
        return {"SS": sorted(inner)}
    if kind == "BS":
        return {"BS": [_hex(b) for b in sorted(bytes(b) for b in inner)]}
    return value


def content_hash(item: dict[str, dict[str, Any]]) -> str:
    """A short hash of an item's content, equal for equal items whichever side they were read from.

    Both sync directions mark what they write with it, so an echo (the same content coming back) is
    told apart from an application change (DESIGN §6).
    """
    text = _ENCODER.encode({name: _hashable_value(value) for name, value in item.items()})
    return hashlib.blake2b(text, digest_size=12).hexdigest()
