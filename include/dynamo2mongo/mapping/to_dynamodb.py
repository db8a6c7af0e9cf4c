"""MongoDB documents back to DynamoDB items: the backward mapping (DESIGN §4).

A document's ``_ddb`` hints restore the DynamoDB types BSON has no room for (sets, numbers kept as
strings); ``_id`` and ``_ddb`` themselves are never written back. BSON values an application
writes that DynamoDB has no type for follow a ``BsonMapping`` (per table: ``sync.bson_dates``,
``sync.bson_object_ids``):

| BSON | default | alternatives |
|---|---|---|
| Date | S ``2026-12-04T18:50:56.123Z`` (ISO-8601 UTC, milliseconds) | ``epoch_millis``: N; ``reject`` |
| ObjectId | S of its 24 hex digits | ``reject`` |

ISO strings are the default because they sort as S in time order and are what DynamoDB
applications conventionally store for dates. Every other value DynamoDB cannot hold (NaN, Infinity,
numbers out of its range, Regex, Code, MinKey/MaxKey, Timestamp, DBRef, Binary of a subtype other
than 0, a value contradicting its type hint, duplicate set members, an empty top-level name) raises
``Unrepresentable``: the caller quarantines the change. ``dynamo2mongo.mapping.item_limits`` then
says what DynamoDB itself would refuse of a converted item (size, key attributes).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Any

from bson import Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.datetime_ms import DatetimeMS

from dynamo2mongo.mapping.hints import RESERVED, SET_HINTS, hint_tree
from dynamo2mongo.mapping.names import decode_name
from dynamo2mongo.mapping.numbers import number_attr_text, number_text
from dynamo2mongo.mapping.unrepresentable import Unrepresentable

# A hinted empty set: DynamoDB has no empty sets, so the attribute is left out.
_ABSENT = object()


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
        return {"N": number_attr_text(value, path)}
    if hint not in SET_HINTS:
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
        texts = [number_attr_text(v, path) for v in value]
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
        return {"N": number_attr_text(value, path)}
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


def document_to_item(document: dict[str, Any], bson_mapping: BsonMapping = DEFAULT_BSON_MAPPING) -> dict[str, Any]:
    """A MongoDB document back as a DynamoDB item; ``_id`` and ``_ddb`` are never written back.

    Raises Unrepresentable, naming the field path, why and what to change, for a value DynamoDB
    cannot hold; ``item_problems`` checks what only the table's key schema and DynamoDB's limits decide.
    """
    return _attributes(document, (), hint_tree(document), bson_mapping)
