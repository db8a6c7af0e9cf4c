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

Back to DynamoDB, BSON values an application writes that DynamoDB has no type for follow a
``BsonMapping`` (per table: ``sync.bson_dates``, ``sync.bson_object_ids``):

| BSON | default | alternatives |
|---|---|---|
| Date | S ``2026-12-04T18:50:56.123Z`` (ISO-8601 UTC, milliseconds) | ``epoch_millis``: N; ``reject`` |
| ObjectId | S of its 24 hex digits | ``reject`` |

ISO strings are the default because they sort as S in time order and are what DynamoDB
applications conventionally store for dates. Every other value DynamoDB cannot hold (NaN, Infinity,
numbers out of its range, Regex, Code, MinKey/MaxKey, Timestamp, DBRef, Binary of a subtype other
than 0, a value contradicting its type hint, duplicate set members, an empty top-level name) raises
``Unrepresentable``: the caller quarantines the change. ``item_problems`` then says what DynamoDB
itself would refuse of a converted item (size, key attributes).
"""

from __future__ import annotations

import calendar
import datetime as dt
import decimal
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bson import Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.datetime_ms import DatetimeMS

from dynamo2mongo.mapping.keys import key_fields
from dynamo2mongo.mapping.names import decode_name, encode_name
from dynamo2mongo.errors import Permanent

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


class Unrepresentable(Permanent, ValueError):
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


DATE_MAPPINGS = ("iso8601", "epoch_millis", "reject")
OBJECT_ID_MAPPINGS = ("hex", "reject")


@dataclass(frozen=True)
class BsonMapping:
    """How backward sync writes BSON Dates and ObjectIds, which DynamoDB has no type for."""

    dates: str = "iso8601"
    object_ids: str = "hex"

    def __post_init__(self) -> None:
        if self.dates not in DATE_MAPPINGS:
            raise ValueError(f"bson dates mapping must be one of {', '.join(DATE_MAPPINGS)}, got {self.dates!r}")
        if self.object_ids not in OBJECT_ID_MAPPINGS:
            raise ValueError(f"bson object id mapping must be one of {', '.join(OBJECT_ID_MAPPINGS)}, "
                             f"got {self.object_ids!r}")


DEFAULT_BSON_MAPPING = BsonMapping()
_BINARY_SUBTYPES = {1: "function", 2: "old binary", 3: "old UUID", 4: "UUID", 5: "MD5", 6: "encrypted",
                    7: "compressed column", 8: "sensitive", 9: "vector"}


def _binary(value: Any, path: tuple) -> bytes:
    if isinstance(value, Binary):  # a bytes subclass, so it is checked first
        if value.subtype == 0:
            return bytes(value)
        kind = _BINARY_SUBTYPES.get(value.subtype, "user-defined")
        raise Unrepresentable(
            f"Binary subtype {value.subtype} ({kind}) cannot be written: DynamoDB's B has no subtype, so it would "
            f"come back as subtype 0; write it as subtype 0{' or as its string form' if value.subtype in (3, 4) else ''}",
            path)
    if isinstance(value, bytes):
        return value
    raise Unrepresentable(f"expected binary data, got {type(value).__name__}", path)


def _contradiction(hint: str, expected: str, value: Any, path: tuple) -> Unrepresentable:
    return Unrepresentable(
        f"the type hint {hint} in _ddb.t expects {expected}, got {type(value).__name__}; write {expected} here, or "
        f"remove this path's hint from _ddb.t if the attribute changed type", path)


def _unique_set(hint: str, members: list, keys: list, path: tuple) -> dict:
    if len(set(keys)) != len(keys):
        raise Unrepresentable(f"the {hint} set holds duplicate members, which DynamoDB refuses; remove the "
                              f"duplicates (or drop this path's hint from _ddb.t to write a list)", path)
    return {hint: members}


def _from_hinted(value: Any, hint: str, path: tuple) -> Any:
    if hint == "N":
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal128, str)):
            raise _contradiction("N", "a number", value, path)
        return {"N": _number_attr_text(value, path)}
    if hint not in _SET_HINTS:
        raise Unrepresentable(f"unknown type hint {hint!r} in _ddb.t; the hints are N, SS, NS and BS", path)
    if not isinstance(value, list):
        raise _contradiction(hint, "an array", value, path)
    if not value:
        return _ABSENT
    if hint == "SS":
        if not all(isinstance(v, str) and not isinstance(v, Code) for v in value):
            raise _contradiction("SS", "an array of strings", next(v for v in value if not isinstance(v, str) or isinstance(v, Code)), path)
        return _unique_set("SS", list(value), value, path)
    if hint == "NS":
        texts = [_number_attr_text(v, path) for v in value]
        # Normalized texts: 1, 1.0 and Decimal128("1.00") are one DynamoDB number.
        return _unique_set("NS", texts, texts, path)
    members = [_binary(v, path) for v in value]
    return _unique_set("BS", members, members, path)


def _date(value: dt.datetime | DatetimeMS, path: tuple, mapping: BsonMapping) -> dict:
    if mapping.dates == "reject":
        raise Unrepresentable("a BSON Date cannot be written: this table's sync.bson_dates is reject; store the date "
                              "as an ISO-8601 string or a number, or choose iso8601 or epoch_millis", path)
    if isinstance(value, DatetimeMS):
        millis = int(value)
        moment = None
    else:
        moment = value.astimezone(dt.timezone.utc) if value.tzinfo else value
        millis = calendar.timegm(moment.timetuple()) * 1000 + moment.microsecond // 1000
    if mapping.dates == "epoch_millis":
        return {"N": str(millis)}
    if moment is None:
        try:
            moment = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=millis)
        except OverflowError:
            moment = None
        if moment is None or not 1 <= moment.year <= 9999:
            raise Unrepresentable(f"the BSON Date {millis} ms from 1970 is outside years 1 to 9999, which an ISO-8601 "
                                  f"string cannot hold in sortable form; fix the date, or set sync.bson_dates to "
                                  f"epoch_millis", path)
    # BSON Dates hold milliseconds: finer digits cannot come from MongoDB.
    return {"S": moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"}


def _no_type(value: Any, path: tuple) -> Unrepresentable:
    if isinstance(value, (Regex, re.Pattern)):
        why = "a regular expression (BSON Regex) has no DynamoDB type; store its pattern as a string"
    elif isinstance(value, Code):
        why = "JavaScript code (BSON Code) has no DynamoDB type; store it as a string"
    elif isinstance(value, (MinKey, MaxKey)):
        why = f"{type(value).__name__} is a MongoDB sort sentinel with no DynamoDB value; remove the field"
    elif isinstance(value, Timestamp):
        why = "a BSON Timestamp (MongoDB's internal replication time) has no DynamoDB type; store a Date instead"
    elif isinstance(value, DBRef):
        why = "a DBRef has no DynamoDB type; store the referenced _id instead"
    elif isinstance(value, uuid.UUID):
        why = "a UUID (Binary subtype 4) has no DynamoDB type that keeps it a UUID; store its string form"
    else:
        why = f"{type(value).__name__} has no exact DynamoDB type; store it as a string, number or binary"
    return Unrepresentable(why, path)


def _attributes(value: dict, path: tuple, tree: dict | None, mapping: BsonMapping) -> dict:
    attrs = {}
    for stored, inner in value.items():
        if not path and (stored == "_id" or stored == RESERVED):
            continue
        converted = _from_value(inner, (*path, stored), tree.get(stored) if tree else None, mapping)
        if converted is _ABSENT:
            continue
        name = decode_name(stored)
        if not name and not path:
            raise Unrepresentable("a top-level field with an empty name (or '%') cannot be a DynamoDB attribute, "
                                  "whose names are never empty; rename the field", (*path, stored))
        if name in attrs:
            earlier = next(k for k in value if k != stored and decode_name(k) == name)
            raise Unrepresentable(f"fields {earlier!r} and {stored!r} both become the DynamoDB attribute {name!r} (a "
                                  f"name starting with '%' is an encoded one); rename one", (*path, stored))
        attrs[name] = converted
    return attrs


def _from_value(value: Any, path: tuple, tree: dict | None, mapping: BsonMapping) -> Any:
    if tree is not None:
        hint = tree.get(None)
        if hint is not None:
            return _from_hinted(value, hint, path)
    if type(value) is str:
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, Int64)):
        return {"N": number_text(int(value), path)}
    if value is None:
        return {"NULL": True}
    if isinstance(value, dict):
        return {"M": _attributes(value, path, tree, mapping)}
    if isinstance(value, list):
        items = []
        for index, inner in enumerate(value):
            converted = _from_value(inner, (*path, index), tree.get(index) if tree else None, mapping)
            if converted is _ABSENT:
                raise Unrepresentable("an empty set inside a list cannot be written to DynamoDB", (*path, index))
            items.append(converted)
        return {"L": items}
    if isinstance(value, (Decimal128, float)):
        return {"N": _number_attr_text(value, path)}
    if isinstance(value, (bytes, Binary)):
        return {"B": _binary(value, path)}
    if isinstance(value, (dt.datetime, DatetimeMS)):
        return _date(value, path, mapping)
    if isinstance(value, ObjectId):
        if mapping.object_ids == "reject":
            raise Unrepresentable("an ObjectId cannot be written: this table's sync.bson_object_ids is reject; store "
                                  "its hex string, or choose hex", path)
        return {"S": str(value)}
    if isinstance(value, str) and not isinstance(value, Code):
        return {"S": str(value)}
    raise _no_type(value, path)


def _hint_tree(document: dict[str, Any]) -> dict | None:
    meta = document.get(RESERVED)
    hints = meta.get("t") if isinstance(meta, dict) else None
    if not hints:
        return None
    if not isinstance(hints, list):
        raise Unrepresentable(f"_ddb.t must be a list of type hints, got {type(hints).__name__}; restore it from the "
                              f"last synced version or remove _ddb.t", (RESERVED, "t"))
    tree: dict = {}
    for index, hint in enumerate(hints):
        try:
            parts, kind = hint["p"], hint["t"]
            node = tree
            for part in parts:
                node = node.setdefault(part, {})
        except (KeyError, TypeError, AttributeError):
            raise Unrepresentable(f"type hint {hint!r:.80} is malformed (a hint is {{p: [path...], t: N|SS|NS|BS}}); "
                                  f"restore it from the last synced version or remove it", (RESERVED, "t", index)) from None
        if not isinstance(parts, list) or not isinstance(kind, str):
            raise Unrepresentable(f"type hint {hint!r:.80} is malformed (a hint is {{p: [path...], t: N|SS|NS|BS}}); "
                                  f"restore it from the last synced version or remove it", (RESERVED, "t", index))
        node[None] = kind
    return tree


def document_to_item(document: dict[str, Any], bson_mapping: BsonMapping = DEFAULT_BSON_MAPPING) -> dict[str, Any]:
    """A MongoDB document back as a DynamoDB item; ``_id`` and ``_ddb`` are never written back.

    Raises Unrepresentable, naming the field path, why and what to change, for a value DynamoDB
    cannot hold; ``item_problems`` checks what only the table's key schema and DynamoDB's limits decide.
    """
    return _attributes(document, (), _hint_tree(document), bson_mapping)


# ---- What DynamoDB refuses of an item ------------------------------------------------------------

ITEM_SIZE_LIMIT = 400 * 1024
# Key value limits in bytes: partition (hash) key, then sort (range) key.
_KEY_SIZE_LIMITS = (2048, 1024)
NESTING_LIMIT = 32
_TYPE_NAMES = {"S": "string", "N": "number", "B": "binary"}


class _TooDeep(Exception):
    pass


def _number_size(text: str) -> int:
    mantissa = text.lstrip("+-").split("e")[0].split("E")[0].replace(".", "")
    return (len(mantissa.strip("0")) + 1) // 2 + 1


def _name_size(name: str) -> int:
    return len(name.encode("utf-8", "surrogatepass"))


def _value_size(attr: dict, depth: int) -> int:
    """Bytes of an attribute value by DynamoDB's published size rules; raises _TooDeep past its nesting limit."""
    ((kind, inner),) = attr.items()
    if kind == "S":
        return _name_size(inner)
    if kind == "N":
        return _number_size(inner)
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(_name_size(v) for v in inner)
    if kind == "NS":
        return sum(_number_size(v) for v in inner)
    if kind == "BS":
        return sum(len(v) for v in inner)
    if depth >= NESTING_LIMIT:
        raise _TooDeep
    if kind == "L":
        return 3 + sum(_value_size(v, depth + 1) + 1 for v in inner)
    return 3 + sum(_name_size(k) + _value_size(v, depth + 1) + 1 for k, v in inner.items())


def item_size(item: dict[str, Any]) -> int:
    """The item's size as DynamoDB counts it for its 400 KB limit: names' UTF-8 bytes plus values."""
    return sum(_name_size(name) + _value_size(attr, 0) for name, attr in item.items())


def item_problems(item: dict[str, Any], key_schema: Mapping[str, str]) -> str | None:
    """Why DynamoDB would refuse ``item`` (from document_to_item), or None.

    ``key_schema`` maps the table's key attributes, hash key first, to their types ("S", "N", "B").
    """
    for position, (name, expected) in enumerate(key_schema.items()):
        attr = item.get(name)
        if attr is None:
            return (f"key attribute {name!r} is missing: every document must carry the table's key fields "
                    f"({', '.join(key_schema)}); add it")
        ((kind, value),) = attr.items()
        if kind != expected:
            return (f"key attribute {name!r} is {kind}, but the table's key schema declares {expected}; write it as "
                    f"a {_TYPE_NAMES.get(expected, expected)}")
        if kind in ("S", "B"):
            size = _name_size(value) if kind == "S" else len(value)
            if size == 0:
                return f"key attribute {name!r} is an empty {_TYPE_NAMES[kind]}, which DynamoDB refuses; give it a value"
            limit = _KEY_SIZE_LIMITS[min(position, 1)]
            if size > limit:
                return (f"key attribute {name!r} is {size:,} bytes; DynamoDB's limit for a "
                        f"{'partition' if position == 0 else 'sort'} key is {limit:,} bytes; shorten it")
    try:
        size = item_size(item)
    except _TooDeep:
        return f"the item nests maps and lists deeper than DynamoDB's {NESTING_LIMIT} levels; flatten the document"
    if size > ITEM_SIZE_LIMIT:
        return (f"the item is {size:,} bytes by DynamoDB's size rules (attribute names plus values), over its "
                f"400 KB ({ITEM_SIZE_LIMIT:,} bytes) item limit; make the document smaller")
    return None
