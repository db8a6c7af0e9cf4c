"""Canonical form of a DynamoDB item, for comparing and hashing items from either side.

DynamoDB compares numbers by value and sets without order, so the canonical form spells every
number in one way and sorts set elements; everything else is kept as it is.
"""

from __future__ import annotations

import decimal
import hashlib
import json
from typing import Any

_CONTEXT = decimal.Context(prec=40)


def canonical_number(text: str) -> str:
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


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _hashable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hashable(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$b": bytes(value).hex()}
    return value


def content_hash(item: dict[str, dict[str, Any]]) -> str:
    """A short hash of an item's content, equal for equal items whichever side they were read from.

    Both sync directions mark what they write with it, so an echo (the same content coming back) is
    told apart from an application change (DESIGN §6).
    """
    text = json.dumps(_hashable(canonical_item(item)), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()
