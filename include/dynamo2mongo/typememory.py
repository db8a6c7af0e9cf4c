"""DynamoDB types for documents written by applications that do not know ``_ddb`` (DESIGN §6).

A document rewritten without ``_ddb`` (an ODM's ``replace_one``) has lost the hints that say a list
is a string set or a string is a 37-digit number. Backward sync gives it back the hints of the
version both stores last agreed on (dynamo2mongo.keystate keeps them per key), where the value at
each hinted path still fits the hint. A hint whose value no longer fits is not guessed: it is
reported as undecided, and the value goes to DynamoDB as its plain type.
"""

from __future__ import annotations

import decimal
from typing import Any

from bson import Binary, Decimal128, Int64

from dynamo2mongo.types import RESERVED

_NUMBERS = (int, Int64, float, Decimal128)


def _at(document: Any, path: list) -> Any:
    value = document
    for part in path:
        if isinstance(part, int) and isinstance(value, list) and 0 <= part < len(value):
            value = value[part]
        elif isinstance(part, str) and isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return _MISSING
    return value


_MISSING = object()


def _is_number_text(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return decimal.Decimal(value).is_finite()
    except decimal.InvalidOperation:
        return False


def _fits(value: Any, hint: str) -> bool:
    if hint == "N":
        return _is_number_text(value)
    if not isinstance(value, list) or not value:
        return False
    if hint == "SS":
        return all(isinstance(v, str) for v in value)
    if hint == "NS":
        return all((isinstance(v, _NUMBERS) and not isinstance(v, bool)) or _is_number_text(v) for v in value)
    if hint == "BS":
        return all(isinstance(v, (bytes, Binary)) for v in value)
    return False


def restore(document: dict[str, Any], remembered: list | None) -> tuple[dict[str, Any], list[list]]:
    """The document with the remembered hints that still fit; and the paths whose hint did not."""
    if RESERVED in document or not remembered:
        return document, []
    kept, undecided = [], []
    for hint in remembered:
        value = _at(document, hint["p"])
        if value is _MISSING:
            continue
        (kept if _fits(value, hint["t"]) else undecided).append(hint)
    if not kept:
        return document, [h["p"] for h in undecided]
    return {**document, RESERVED: {"t": kept}}, [h["p"] for h in undecided]
