"""DynamoDB items to MongoDB documents, losslessly (DESIGN §4).

Items are DynamoDB wire format (``{"name": {"S": "x"}}``, B as bytes), as the low-level client,
streams and our export readers give them. Documents are what pymongo stores.

| DynamoDB | MongoDB | hint |
|---|---|---|
| S, BOOL, NULL, M, L | str, bool, None, document, array | |
| N | see ``dynamo2mongo.mapping.numbers`` | ``N`` where kept as a string |
| B | bytes (Binary subtype 0) | |
| SS / NS / BS | array of the mapped elements | ``SS`` / ``NS`` / ``BS`` |

Attribute names MongoDB cannot hold as they are get the reversible encoding of
``dynamo2mongo.mapping.names``; hints go to ``_ddb.t`` (``dynamo2mongo.mapping.hints``).
"""

from __future__ import annotations

from typing import Any

from dynamo2mongo.mapping.hints import RESERVED, SET_HINTS
from dynamo2mongo.mapping.keys import key_fields
from dynamo2mongo.mapping.names import encode_name
from dynamo2mongo.mapping.numbers import ddb_decimal, number_to_value, plain_number
from dynamo2mongo.mapping.unrepresentable import Unrepresentable

MAX_DEPTH = 100  # BSON's nesting limit; DynamoDB allows 32, so only malformed input reaches it
# Attribute names repeat from item to item; their stored form is cached (bounded, for tables whose
# names are data).
_STORED_NAMES: tuple[dict[str, str], dict[str, str]] = ({}, {})
_STORED_NAMES_LIMIT = 1 << 16
_KEY_FIELDS: dict[tuple[str, ...], tuple[str, ...]] = {}


def _check_set(kind: str, inner: Any, path: tuple) -> None:
    if not isinstance(inner, list) or not inner:
        raise Unrepresentable(f"{kind} must be a non-empty list (DynamoDB has no empty sets)", path)
    if kind == "NS":
        unique = {ddb_decimal(v, path) for v in inner}
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
            value = plain_number(text) if type(text) is str else None
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


def _fill(document: dict, attributes: dict, path: tuple, hints: list, doubles: bool,
          key_attrs: tuple[str, ...] = ()) -> dict:
    """The attributes of an item (``path`` empty) or of a map, converted into ``document``."""
    top_level = not path
    names = _STORED_NAMES[top_level]
    for name, value in attributes.items():
        # A stored name is never empty, so a cache miss is the only falsy answer.
        stored = names.get(name) or _stored_name(name, top_level)
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
        # Key numbers stay lossless whatever the mapping: they make up _id.
        document[stored] = _to_value(value, (*path, stored), hints, doubles and name not in key_attrs)
    return document


def _map_value(inner: dict, path: tuple, hints: list, doubles: bool) -> dict:
    if len(path) >= MAX_DEPTH:
        raise Unrepresentable(f"nested deeper than {MAX_DEPTH} levels", path)
    return _fill({}, inner, path, hints, doubles)


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
    elif kind in SET_HINTS:
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
    document: dict[str, Any] = _fill({"_id": None}, item, (), hints, doubles, key_attrs)
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
