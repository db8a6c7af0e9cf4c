"""The ``_id`` convention shared by the import, both syncs and the new application (DESIGN §4).

``_id`` is the hash key's value, or ``{<hash name>: v, <range name>: v}`` (hash first: MongoDB
compares embedded documents field by field, in order) for a composite key. Names are the stored
(encoded) field names; values are the MongoDB values of the key fields, so the new application
computes the same ``_id`` from the fields of any document it writes.
"""

from __future__ import annotations

from typing import Any

from dynamo2mongo.mapping.names import encode_name
from dynamo2mongo.errors import Permanent


class MissingKeyField(Permanent, ValueError):
    """A document lacks a key field; the application must always write every key field."""


def key_fields(key_attrs: tuple[str, ...]) -> tuple[str, ...]:
    """Stored field names of the key attributes, hash first."""
    return tuple(encode_name(name, True) for name in key_attrs)


def document_id(document: dict[str, Any], key_attrs: tuple[str, ...]) -> Any:
    """The ``_id`` for a document from its top-level key fields."""
    fields = key_fields(key_attrs)
    try:
        if len(fields) == 1:
            return document[fields[0]]
        return {fields[0]: document[fields[0]], fields[1]: document[fields[1]]}
    except KeyError as missing:
        raise MissingKeyField(
            f"document lacks key field {missing.args[0]!r}; every document needs {', '.join(fields)}"
        ) from None
