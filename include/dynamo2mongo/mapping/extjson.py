"""Canonical MongoDB Extended JSON: the text of the documents the type mapping produces, and back.

``bson.json_util`` is the reference both ways. Its ``dumps`` copies every document through generic
per-value dispatch before ``json.dumps`` writes it, which made it the largest cost of a conversion;
``dumps`` here writes the same text directly for exactly the value types ``item_to_document``
produces (str, int, bool, None, dict, list, bytes, Decimal128, float) and hands any document holding
another type to json_util. ``loads`` reads with msgspec and turns the common wrappers back into
values itself, leaving the others to ``json_util.object_hook``. The unit tests hold both to
json_util's results, byte for byte and value for value.
"""

from __future__ import annotations

import json
import math
from base64 import b64encode
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

import msgspec
from bson import Decimal128, json_util
from bson.json_util import CANONICAL_JSON_OPTIONS

_INT32_MIN, _INT32_LIMIT = -(2**31), 2**31
_INT64_MIN, _INT64_LIMIT = -(2**63), 2**63
_COEFFICIENT_BITS = (1 << 113) - 1
_MAX_COEFFICIENT = 10**34 - 1
# Field names repeat from document to document; caching their quoted form saves most escaping.
_KEYS: dict[str, str] = {}
_KEYS_LIMIT = 1 << 16
# The wrapper keys json_util's object_hook reads: a private name of the pinned pymongo, so the unit
# tests compare every read with json_util.loads.
_WRAPPER_KEYS = frozenset(json_util._PARSERS)
_DECIMAL128_BIAS = 6176
_LOW_64 = (1 << 64) - 1
_decode = msgspec.json.Decoder().decode


class _Other(Exception):
    """The document holds a type this writer does not know: json_util writes it."""


def decimal128_text(value: Decimal128) -> str:
    """``str(value)`` without building a Decimal: the digits and exponent come from the BID bits.

    The layout is IEEE 754-2008 decimal128, binary integer significand; anything but a finite
    number in the usual form (NaN, infinities, the large-coefficient form) goes to ``str``.
    """
    bits = int.from_bytes(value.bid, "little")
    high = bits >> 64
    if (high >> 61) & 3 == 3:
        return str(value)
    coefficient = bits & _COEFFICIENT_BITS
    if coefficient > _MAX_COEFFICIENT:
        return str(value)
    return _decimal_text(high >> 63, str(coefficient), ((high >> 49) & 0x3FFF) - 6176)


def _decimal_text(negative: int, digits: str, exponent: int) -> str:
    """What ``str(decimal.Decimal)`` writes for sign, coefficient digits and exponent.

    The scientific-notation rule of the General Decimal Arithmetic specification, as ``decimal``
    implements it (with the default upper-case ``E``).
    """
    sign = "-" if negative else ""
    left = exponent + len(digits)
    if exponent <= 0 and left > -6:
        if exponent == 0:
            return sign + digits
        if left <= 0:
            return f"{sign}0.{'0' * -left}{digits}"
        return f"{sign}{digits[:left]}.{digits[left:]}"
    fraction = "." + digits[1:] if len(digits) > 1 else ""
    return f"{sign}{digits[0]}{fraction}E{left - 1:+d}"


def _key(name: str) -> str:
    if type(name) is not str:
        raise _Other
    quoted = _quote(name) + ": "
    if len(_KEYS) < _KEYS_LIMIT:
        _KEYS[name] = quoted
    return quoted


def _scalar(value: Any, kind: type) -> str:
    if kind is int:
        if _INT32_MIN <= value < _INT32_LIMIT:
            return '{"$numberInt": "%d"}' % value
        if _INT64_MIN <= value < _INT64_LIMIT:
            return '{"$numberLong": "%d"}' % value
        raise _Other
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if kind is Decimal128:
        return '{"$numberDecimal": "%s"}' % decimal128_text(value)
    if kind is bytes:
        return '{"$binary": {"base64": "%s", "subType": "00"}}' % b64encode(value).decode()
    if kind is float:
        if math.isnan(value):
            return '{"$numberDouble": "NaN"}'
        if math.isinf(value):
            return '{"$numberDouble": "Infinity"}' if value > 0 else '{"$numberDouble": "-Infinity"}'
        return '{"$numberDouble": "%r"}' % value
    raise _Other


def _document(document: dict) -> str:
    parts = []
    append = parts.append
    keys = _KEYS
    for name, value in document.items():
        # A quoted name is never empty, so a cache miss is the only falsy answer.
        key = keys.get(name) or _key(name)
        kind = type(value)
        if kind is str:
            append(key + _quote(value))
        elif kind is dict:
            append(key + _document(value))
        elif kind is list:
            append(key + _array(value))
        else:
            append(key + _scalar(value, kind))
    return "{" + ", ".join(parts) + "}"


def _array(values: list) -> str:
    parts = []
    append = parts.append
    for value in values:
        kind = type(value)
        if kind is str:
            append(_quote(value))
        elif kind is dict:
            append(_document(value))
        elif kind is list:
            append(_array(value))
        else:
            append(_scalar(value, kind))
    return "[" + ", ".join(parts) + "]"


def dumps(document: dict[str, Any]) -> str:
    """``json_util.dumps(document, json_options=CANONICAL_JSON_OPTIONS)``, faster."""
    try:
        return _document(document)
    except _Other:
        return json_util.dumps(document, json_options=CANONICAL_JSON_OPTIONS)


# ---- reading -------------------------------------------------------------------------------------


def _decimal128(text: str) -> Any:
    """``Decimal128(text)`` for the plain spellings ``str(Decimal)`` writes (``-12.50``), from the
    BID bits (IEEE 754-2008 decimal128, binary significand); other spellings go to bson."""
    body = text[1:] if text[:1] == "-" else text
    whole, _, fraction = body.partition(".")
    digits = whole + fraction
    if not (digits.isdigit() and digits.isascii() and len(digits) <= 34):
        return Decimal128(text)
    coefficient = int(digits)
    high = ((_DECIMAL128_BIAS - len(fraction)) << 49) | (coefficient >> 64)
    if body is not text:
        high |= 1 << 63
    return Decimal128((high, coefficient & _LOW_64))


def _restore(document: dict) -> Any:
    """What ``json_util.object_hook`` makes of a decoded document, children first as json.loads
    calls it; the wrappers our documents hold most are answered here, the others by json_util."""
    for name, value in document.items():
        kind = type(value)
        if kind is dict:
            if len(value) == 1:
                text = value.get("$numberInt")
                if type(text) is str:
                    document[name] = int(text)
                    continue
            document[name] = _restore(value)
        elif kind is list:
            _restore_all(value)
    if _WRAPPER_KEYS.isdisjoint(document):
        return document
    if len(document) == 1:
        text = document.get("$numberInt")
        if type(text) is str:
            return int(text)
        text = document.get("$numberDecimal")
        if type(text) is str:
            return _decimal128(text)
    return json_util.object_hook(document)


def _restore_all(values: list) -> None:
    for index, value in enumerate(values):
        kind = type(value)
        if kind is dict:
            values[index] = _restore(value)
        elif kind is list:
            _restore_all(value)


def loads(text: bytes | str) -> Any:
    """``json.loads(text, object_hook=json_util.object_hook)``, faster.

    JSON that msgspec refuses (NaN, lone surrogate escapes, other encodings than UTF-8) is read by
    json.loads, so errors and edge cases are the reference's.
    """
    try:
        value = _decode(text)
    except msgspec.DecodeError:
        return json.loads(text, object_hook=json_util.object_hook)
    if type(value) is dict:
        return _restore(value)
    if type(value) is list:
        _restore_all(value)
    return value
