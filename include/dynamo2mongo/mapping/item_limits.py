"""What DynamoDB itself refuses of an item: its size (400 KB), nesting depth and key attributes.

A document that converts (``dynamo2mongo.mapping.to_dynamodb``) may still be an item DynamoDB turns
away; backward sync asks ``item_problems`` first and quarantines the change with its answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
