"""The lossless DynamoDB <-> MongoDB type mapping (DESIGN §4).

Items are DynamoDB wire format (``{"name": {"S": "x"}}``, B as bytes), as the low-level client,
streams and our export readers give them. Documents are what pymongo stores.

| DynamoDB | MongoDB | hint |
|---|---|---|
| S, BOOL, NULL, M, L | str, bool, None, document, array | |
| N integral in int64 | int (bson picks int32/int64) | |
| other N, <= 34 digits | Decimal128 of the normalized value | |
| other N | canonical decimal string | ``N`` |
| B | bytes (Binary subtype 0) | |
| SS / NS / BS | array of the mapped elements | ``SS`` / ``NS`` / ``BS`` |

Hints live in ``_ddb.t`` as ``[{"p": [path...], "t": hint}]``; the path holds stored field names
and list indices. Numbers are normalized first (1.5 and 1.50 are the same DynamoDB number and must
be the same BSON value, for they may sit inside ``_id``).

``number_mapping="double_when_exact"`` stores a non-key number as a double when the double's
shortest text is the same number (1.5, 0.1, 1e+30), for applications that want doubles; numbers
that a double cannot hold exactly keep the lossless mapping.
"""

from __future__ import annotations

import decimal
import re
from typing import Any

from bson import Binary, Decimal128, Int64

from dynamo2mongo.keys import key_fields
from dynamo2mongo.names import decode_name, encode_name

RESERVED = "_ddb"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_DEPTH = 100  # BSON's nesting limit; DynamoDB allows 32, so only malformed input reaches it
_DECIMAL128_DIGITS = 34
# DynamoDB numbers: up to 38 significant digits, magnitude 1E-130 .. 9.99..E+125.
_DDB_DIGITS, _DDB_MIN_ADJUSTED, _DDB_MAX_ADJUSTED = 38, -130, 125
_DDB_RANGE = "at most 38 significant digits, magnitude 1E-130 to 9.9999999999999999999999999999999999999E+125"
# DynamoDB's number syntax, to tell why a text is refused: its digits are ASCII, where the decimal
# module and int() also read other scripts' digits ("٣" is 3).
_DDB_NUMBER = re.compile(r"[+-]?([0-9]*)(?:\.([0-9]*))?(?:[eE][+-]?[0-9]+)?", re.ASCII)
_NOT_FINITE = re.compile(r"[+-]?(?:s?nan[0-9]*|inf|infinity)", re.ASCII | re.IGNORECASE)
# Reads a DynamoDB number exactly and traps any it cannot hold: more digits (Inexact), a larger
# (Overflow) or a smaller magnitude (Subnormal).
_DDB_CONTEXT = decimal.Context(
    prec=_DDB_DIGITS,
    Emax=_DDB_MAX_ADJUSTED,
    Emin=_DDB_MIN_ADJUSTED,
    traps=[decimal.InvalidOperation, decimal.Inexact, decimal.Overflow, decimal.Subnormal],
)
_CONTEXT = decimal.Context(prec=60, Emax=999_999, Emin=-999_999)
_SET_HINTS = {"SS", "NS", "BS"}
_ABSENT = object()
# Plain number spellings, read without building a Decimal; anything else (other digits, spaces,
# "Infinity", huge exponents) takes the checked path, _decimal.
_PLAIN_NUMBER = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]{1,9}))?", re.ASCII)
_DECIMAL128_BIAS = 6176
_LOW_64 = (1 << 64) - 1
# Attribute names repeat from item to item; their stored form is cached (bounded, for tables whose
# names are data).
_STORED_NAMES: tuple[dict[str, str], dict[str, str]] = ({}, {})
_STORED_NAMES_LIMIT = 1 << 16
_KEY_FIELDS: dict[tuple[str, ...], tuple[str, ...]] = {}


class Unrepresentable(ValueError):
    """An item or document that cannot be converted exactly; ``reason`` says where and why."""

    def __init__(self, reason: str, path: tuple = ()):
        self.path = tuple(path)
        self.reason = f"{format_path(self.path)}: {reason}" if self.path else reason
        super().__init__(self.reason)


def format_path(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# ---- DynamoDB -> MongoDB -------------------------------------------------------------------------


def _shown(value: Any) -> str:
    """``value`` for a reason, which names the value but need not hold all of a huge one."""
    text = value if isinstance(value, str) else str(value)
    shown, more = (text, "") if len(text) <= 80 else (text[:60], f"... ({len(text):,} characters)")
    return (repr(shown) if isinstance(value, str) else shown) + more


def _out_of_range(value: Any, path: tuple) -> Unrepresentable:
    return Unrepresentable(f"{_shown(value)} is outside DynamoDB's number range ({_DDB_RANGE})", path)


def _decimal(text: Any, path: tuple) -> decimal.Decimal:
    """The number DynamoDB holds for ``text``; Unrepresentable for what it cannot hold."""
    if not isinstance(text, str):
        raise Unrepresentable(f"number must be a string, got {type(text).__name__}", path)
    # Given ASCII, create_decimal reads DynamoDB's syntax and, besides, NaN and Infinity.
    if text.isascii():
        try:
            value = _DDB_CONTEXT.create_decimal(text)
        except decimal.DecimalException:
            value = None
        if value is not None and value.is_finite():
            return value
    match = _DDB_NUMBER.fullmatch(text)
    if match is None or not (match[1] or match[2]):
        if _NOT_FINITE.fullmatch(text):
            raise Unrepresentable(f"{_shown(text)} is not a finite number", path)
        if not text.isascii():
            raise Unrepresentable(f"{_shown(text)} is not a number: DynamoDB numbers use ASCII digits only", path)
        raise Unrepresentable(f"{_shown(text)} is not a number", path)
    significant = (match[1] + (match[2] or "")).strip("0")
    if len(significant) > _DDB_DIGITS:
        raise Unrepresentable(
            f"{_shown(text)} has {len(significant)} significant digits; DynamoDB numbers have at most {_DDB_DIGITS}", path
        )
    raise _out_of_range(text, path)


def _plain_number(text: str) -> Any:
    """int or Decimal128 for a plain spelling that needs neither rounding nor a hint, else None.

    The same values as _decimal_number: the digits are normalized (trailing zeros moved
    into the exponent) and the Decimal128 is built from its BID bits (IEEE 754-2008 decimal128,
    binary significand), as bson would build it from the normalized Decimal.
    """
    match = _PLAIN_NUMBER.fullmatch(text)
    if match is None:
        return None
    sign, whole, fraction, exponent = match.groups()
    fraction = fraction or ""
    if not whole and not fraction:
        return None
    digits = (whole + fraction).lstrip("0")
    if not digits:
        return 0
    significant = digits.rstrip("0")
    scale = int(exponent or 0) - len(fraction) + len(digits) - len(significant)
    if scale >= 0 and len(significant) + scale <= 19:
        integral = int(significant) * 10**scale
        if sign == "-":
            integral = -integral
        if INT64_MIN <= integral <= INT64_MAX:
            return integral
    # Numbers DynamoDB cannot hold go to the checked path for their reason; the others fit Decimal128's
    # exponent range.
    if len(significant) > _DECIMAL128_DIGITS or not _DDB_MIN_ADJUSTED <= scale + len(significant) - 1 <= _DDB_MAX_ADJUSTED:
        return None
    coefficient = int(significant)
    high = ((scale + _DECIMAL128_BIAS) << 49) | (coefficient >> 64)
    if sign == "-":
        high |= 1 << 63
    return Decimal128((high, coefficient & _LOW_64))


def number_to_value(text: str, path: tuple, hints: list | None, doubles: bool = False) -> Any:
    """N text to int, Decimal128, float (``doubles``) or canonical string (+ an ``N`` hint)."""
    if type(text) is str:
        # isdigit() alone also takes other scripts' digits, which int() reads ("٣") or refuses ("²").
        if len(text) < 19 and text.isascii() and (text.isdigit() or (text[:1] == "-" and text[1:].isdigit())):
            return int(text)
        plain = _plain_number(text)
        if plain is not None and (not doubles or type(plain) is int):
            return plain
    return _decimal_number(text, path, hints, doubles)


def _decimal_number(text: str, path: tuple, hints: list | None, doubles: bool) -> Any:
    value = _decimal(text, path)
    if value == value.to_integral_value():
        integral = int(value)
        if INT64_MIN <= integral <= INT64_MAX:
            return integral
    normal = value.normalize(_CONTEXT)
    if doubles:
        double = float(normal)
        if _CONTEXT.create_decimal(repr(double)) == normal:
            return double
    if len(normal.as_tuple().digits) <= _DECIMAL128_DIGITS:
        return Decimal128(normal)
    if hints is not None:
        hints.append({"p": list(path), "t": "N"})
    return str(normal)


def _check_set(kind: str, inner: Any, path: tuple) -> None:
    if not isinstance(inner, list) or not inner:
        raise Unrepresentable(f"{kind} must be a non-empty list (DynamoDB has no empty sets)", path)
    if kind == "NS":
        unique = {_decimal(v, path) for v in inner}
    else:
        unique = set(inner) if kind == "SS" else {bytes(v) for v in inner}
    if len(unique) != len(inner):
        raise Unrepresentable(f"{kind} holds duplicate elements", path)


def _plain_set(kind: str, inner: Any) -> list | None:
    """The converted elements of a well-formed set of plain values, or None to take the checked path."""
    if type(inner) is not list or not inner:
        return None
    if kind == "SS":
        if all(type(v) is str for v in inner) and len(set(inner)) == len(inner):
            return inner.copy()
        return None
    if kind == "NS":
        converted = []
        for text in inner:
            value = _plain_number(text) if type(text) is str else None
            if value is None:
                return None
            converted.append(value)
        # Normalized values have one spelling each, so equal numbers have equal keys.
        if len({v if type(v) is int else v.bid for v in converted}) == len(converted):
            return converted
        return None
    if all(type(v) is bytes for v in inner) and len(set(inner)) == len(inner):
        return inner.copy()
    return None


def _set_value(kind: str, inner: Any, path: tuple, hints: list) -> list:
    converted = _plain_set(kind, inner)
    if converted is None:
        _check_set(kind, inner, path)
        if kind == "SS":
            if not all(isinstance(v, str) for v in inner):
                raise Unrepresentable("SS elements must be strings", path)
            converted = list(inner)
        elif kind == "NS":
            converted = [number_to_value(v, path, None, False) for v in inner]
        else:
            if not all(isinstance(v, (bytes, bytearray, memoryview)) for v in inner):
                raise Unrepresentable("BS elements must be bytes", path)
            converted = [bytes(v) for v in inner]
    hints.append({"p": list(path), "t": kind})
    return converted


def _stored_name(name: str, top_level: bool) -> str:
    stored = encode_name(name, top_level)
    cache = _STORED_NAMES[top_level]
    if len(cache) < _STORED_NAMES_LIMIT:
        cache[name] = stored
    return stored


def _map_value(inner: dict, path: tuple, hints: list, doubles: bool) -> dict:
    if len(path) >= MAX_DEPTH:
        raise Unrepresentable(f"nested deeper than {MAX_DEPTH} levels", path)
    names = _STORED_NAMES[False]
    document = {}
    for name, value in inner.items():
        # A stored name is never empty, so a cache miss is the only falsy answer.
        stored = names.get(name) or _stored_name(name, False)
        # Strings and small natural numbers are most values: they skip the calls and the path.
        if type(value) is dict and len(value) == 1:
            text = value.get("S")
            if type(text) is str:
                document[stored] = text
                continue
            text = value.get("N")
            if type(text) is str and len(text) < 19 and text.isascii() and text.isdigit():
                document[stored] = int(text)
                continue
        document[stored] = _to_value(value, (*path, stored), hints, doubles)
    return document


def _list_value(inner: list, path: tuple, hints: list, doubles: bool) -> list:
    if len(path) >= MAX_DEPTH:
        raise Unrepresentable(f"nested deeper than {MAX_DEPTH} levels", path)
    values = []
    for index, value in enumerate(inner):
        if type(value) is dict and len(value) == 1:
            text = value.get("S")
            if type(text) is str:
                values.append(text)
                continue
            text = value.get("N")
            if type(text) is str and len(text) < 19 and text.isascii() and text.isdigit():
                values.append(int(text))
                continue
            inner = value.get("M")
            if type(inner) is dict:
                values.append(_map_value(inner, (*path, index), hints, doubles))
                continue
        values.append(_to_value(value, (*path, index), hints, doubles))
    return values


def _to_value(attr: Any, path: tuple, hints: list, doubles: bool) -> Any:
    if not isinstance(attr, dict) or len(attr) != 1:
        raise Unrepresentable(f"attribute value must have exactly one type key, got {attr!r:.80}", path)
    ((kind, inner),) = attr.items()
    if kind == "S":
        if isinstance(inner, str):
            return inner
    elif kind == "N":
        return number_to_value(inner, path, hints, doubles)
    elif kind == "M":
        if isinstance(inner, dict):
            return _map_value(inner, path, hints, doubles)
    elif kind == "L":
        if isinstance(inner, list):
            return _list_value(inner, path, hints, doubles)
    elif kind == "BOOL":
        if isinstance(inner, bool):
            return inner
    elif kind == "NULL":
        if inner is True:
            return None
    elif kind == "B":
        if isinstance(inner, (bytes, bytearray, memoryview)):
            return bytes(inner)
    elif kind in _SET_HINTS:
        return _set_value(kind, inner, path, hints)
    else:
        raise Unrepresentable(f"unknown DynamoDB type {kind!r}", path)
    raise Unrepresentable(f"{kind} value has the wrong shape: {inner!r:.80}", path)


def item_to_document(
    item: dict[str, Any], key_attrs: tuple[str, ...], number_mapping: str = "lossless"
) -> dict[str, Any]:
    """A DynamoDB item as a MongoDB document: ``_id`` first, then the attributes, then ``_ddb``."""
    if not isinstance(item, dict):
        raise Unrepresentable(f"an item must be a map of attributes, got {type(item).__name__}")
    doubles = number_mapping == "double_when_exact"
    hints: list = []
    for name in key_attrs:
        attr = item.get(name)
        if attr is None:
            raise Unrepresentable(f"key attribute {name!r} is missing", (name,))
        if not isinstance(attr, dict) or len(attr) != 1 or next(iter(attr)) not in ("S", "N", "B"):
            raise Unrepresentable(f"key attribute must be S, N or B, got {attr!r:.80}", (name,))
    # _id comes first: its place is taken now, its value set once the key fields are converted.
    document: dict[str, Any] = {"_id": None}
    names = _STORED_NAMES[True]
    for name, attr in item.items():
        stored = names.get(name) or _stored_name(name, True)
        if type(attr) is dict and len(attr) == 1:
            text = attr.get("S")
            if type(text) is str:
                document[stored] = text
                continue
            text = attr.get("N")
            if type(text) is str and len(text) < 19 and text.isascii() and text.isdigit():
                document[stored] = int(text)
                continue
        # Key numbers stay lossless whatever the mapping: they make up _id.
        document[stored] = _to_value(attr, (stored,), hints, doubles and name not in key_attrs)
    # The convention of keys.document_id, with the key field names looked up once per key schema.
    try:
        stored_keys = _KEY_FIELDS[key_attrs]
    except KeyError:
        stored_keys = _KEY_FIELDS[key_attrs] = key_fields(key_attrs)
    except TypeError:  # key attributes in a list: fine, but not a cache key
        stored_keys = key_fields(key_attrs)
    if len(stored_keys) == 1:
        document["_id"] = document[stored_keys[0]]
    else:
        document["_id"] = {stored_keys[0]: document[stored_keys[0]], stored_keys[1]: document[stored_keys[1]]}
    if hints:
        document[RESERVED] = {"t": hints}
    return document


# ---- MongoDB -> DynamoDB -------------------------------------------------------------------------


def number_text(value: decimal.Decimal | int, path: tuple) -> str:
    """A valid DynamoDB number string for ``value``, or Unrepresentable when DynamoDB cannot hold it."""
    if isinstance(value, int):
        if -(10**_DDB_DIGITS) < value < 10**_DDB_DIGITS:
            return str(value)
        value = decimal.Decimal(value)
    if not value.is_finite():
        raise Unrepresentable(f"{value} is not a finite number", path)
    if value == 0:
        return "0"
    # adjusted() needs no context, so a huge exponent cannot overflow it; normalizing rounds past the
    # context's 60 digits, and the exact comparison then tells.
    adjusted = value.adjusted()
    normal = value.normalize(_CONTEXT) if _DDB_MIN_ADJUSTED <= adjusted <= _DDB_MAX_ADJUSTED else None
    if normal is None or normal != value or len(normal.as_tuple().digits) > _DDB_DIGITS:
        raise _out_of_range(value, path)
    if normal == normal.to_integral_value() and adjusted < _DDB_DIGITS:
        return str(int(normal))
    return str(normal)


def _number_attr_text(value: Any, path: tuple) -> str:
    if isinstance(value, bool):
        raise Unrepresentable("a boolean in a number set", path)
    if isinstance(value, int):
        return number_text(value, path)
    if isinstance(value, Decimal128):
        return number_text(value.to_decimal(), path)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise Unrepresentable(f"{value} is not a finite number", path)
        return number_text(_CONTEXT.create_decimal(repr(value)), path)
    if isinstance(value, str):
        return number_text(_decimal(value, path), path)
    raise Unrepresentable(f"{type(value).__name__} is not a number", path)


def _binary(value: Any, path: tuple) -> bytes:
    if isinstance(value, Binary):  # a bytes subclass, so it is checked first
        if value.subtype == 0:
            return bytes(value)
    elif isinstance(value, bytes):
        return value
    raise Unrepresentable(f"expected binary data, got {type(value).__name__}", path)


def _from_hinted(value: Any, hint: str, path: tuple) -> Any:
    if hint == "N":
        return {"N": _number_attr_text(value, path)}
    if not isinstance(value, list):
        raise Unrepresentable(f"hint {hint} expects an array, got {type(value).__name__}", path)
    if not value:
        return _ABSENT
    if hint == "SS":
        if not all(isinstance(v, str) for v in value):
            raise Unrepresentable("a string set holds a value that is not a string", path)
        return {"SS": list(value)}
    if hint == "NS":
        return {"NS": [_number_attr_text(v, path) for v in value]}
    if hint == "BS":
        return {"BS": [_binary(v, path) for v in value]}
    raise Unrepresentable(f"unknown type hint {hint!r}", path)


def _from_value(value: Any, path: tuple, tree: dict | None) -> Any:
    if tree is not None:
        hint = tree.get(None)
        if hint is not None:
            return _from_hinted(value, hint, path)
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, Int64)):
        return {"N": number_text(int(value), path)}
    if value is None:
        return {"NULL": True}
    if isinstance(value, dict):
        attrs = {}
        for stored, inner in value.items():
            converted = _from_value(inner, (*path, stored), tree.get(stored) if tree else None)
            if converted is not _ABSENT:
                attrs[decode_name(stored)] = converted
        return {"M": attrs}
    if isinstance(value, list):
        items = []
        for index, inner in enumerate(value):
            converted = _from_value(inner, (*path, index), tree.get(index) if tree else None)
            if converted is _ABSENT:
                raise Unrepresentable("an empty set inside a list cannot be written to DynamoDB", (*path, index))
            items.append(converted)
        return {"L": items}
    if isinstance(value, (Decimal128, float)):
        return {"N": _number_attr_text(value, path)}
    if isinstance(value, (bytes, Binary)):
        return {"B": _binary(value, path)}
    raise Unrepresentable(f"{type(value).__name__} has no exact DynamoDB type", path)


def _hint_tree(document: dict[str, Any]) -> dict | None:
    meta = document.get(RESERVED)
    hints = meta.get("t") if isinstance(meta, dict) else None
    if not hints:
        return None
    tree: dict = {}
    for hint in hints:
        node = tree
        for part in hint["p"]:
            node = node.setdefault(part, {})
        node[None] = hint["t"]
    return tree


def document_to_item(document: dict[str, Any]) -> dict[str, Any]:
    """A MongoDB document back as a DynamoDB item; ``_id`` and ``_ddb`` are never written back."""
    tree = _hint_tree(document)
    item = {}
    for stored, value in document.items():
        if stored == "_id" or stored == RESERVED:
            continue
        converted = _from_value(value, (stored,), tree.get(stored) if tree else None)
        if converted is not _ABSENT:
            item[decode_name(stored)] = converted
    return item
