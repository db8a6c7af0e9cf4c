"""What backward sync reads from and writes to DynamoDB: keys, items converted from documents, batches."""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from dynamo2mongo.errors import Permanent
from dynamo2mongo.mapping import (
    RESERVED, BsonMapping, Unrepresentable, document_to_item, item_problems, item_to_document,
)
from dynamo2mongo.mapping.keys import MissingKeyField, document_id, key_fields
from dynamo2mongo.sync.echo import identity
from dynamo2mongo.sync.events import Event
from dynamo2mongo.sync.keystate import KeyState
from dynamo2mongo.sync.typememory import TableTypes, restore

BATCH_WRITE_LIMIT = 25
BATCH_GET_LIMIT = 100
# DynamoDB's per-item refusals: permanent for that item, whatever the retry.
ITEM_REFUSALS = ("ValidationException",)


class BackwardApplyError(Permanent, RuntimeError):
    """A change cannot be written to DynamoDB; the message names the table and the key."""


def dynamodb_key(document_id: Any, key_attrs: tuple[str, ...]) -> dict[str, Any]:
    """The DynamoDB key of a document ``_id`` (the convention of dynamo2mongo.mapping.keys)."""
    fields = key_fields(key_attrs)
    values = document_id if len(fields) > 1 else {fields[0]: document_id}
    try:
        return document_to_item({f: values[f] for f in fields})
    except (KeyError, TypeError):
        raise BackwardApplyError(f"_id {document_id!r} does not follow the key convention ({', '.join(fields)})") from None


def to_item(event: Event, key_attrs: tuple[str, ...], state: KeyState | None, bson_mapping: BsonMapping,
            key_types: dict[str, str] | None, types: TableTypes | None,
            held: dict[str, Any] | None) -> tuple[dict[str, Any], list | None, list]:
    """The DynamoDB item of an application's document, its type hints, and the paths whose
    remembered types no longer fit; or Unrepresentable saying why it has no item."""
    document = event.document
    try:
        expected = document_id(document, key_attrs)
    except MissingKeyField as error:
        raise Unrepresentable(f"{error}; write every key field") from None
    # Compared as BSON: {sk, pk} is another _id than {pk, sk}, though Python's dicts are equal.
    if identity(expected) != event.identity:
        raise Unrepresentable(
            f"_id {event.id!r} does not follow the key convention: the key fields give {expected!r}. Derive _id "
            f"with dynamo2mongo.mapping.keys.document_id (a second document for one DynamoDB item is refused)"
        )
    # The types of the version both stores last agreed on; for a key the sync never wrote, those of
    # the document before this change (a pre-image, where the collection keeps them).
    remembered = state.t if state is not None else ((event.before or {}).get(RESERVED) or {}).get("t")
    held_hints = ((item_to_document(held, key_attrs).get(RESERVED) or {}).get("t")) if held else None
    document, undecided = restore(document, remembered, types, held_hints)
    item = document_to_item(document, bson_mapping)
    problem = item_problems(item, key_types) if key_types else None
    if problem:
        raise Unrepresentable(problem)
    return item, ((document.get(RESERVED) or {}).get("t")), undecided


def current_items(dynamodb: Any, table: str, key_attrs: tuple[str, ...], ids: list[Any]) -> dict[bytes, dict]:
    """The items DynamoDB holds now for these keys (consistent reads); an ``_id`` that names no
    DynamoDB key is left out (its document is quarantined)."""
    found: dict[bytes, dict] = {}
    keys_of = []
    for wanted in ids:
        try:
            keys_of.append(dynamodb_key(wanted, key_attrs))
        except (BackwardApplyError, Unrepresentable):
            continue
    for start in range(0, len(keys_of), BATCH_GET_LIMIT):
        keys = keys_of[start : start + BATCH_GET_LIMIT]
        pending: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True}}
        delay = 0.05
        while pending:
            response = dynamodb.batch_get_item(RequestItems=pending)
            for item in response.get("Responses", {}).get(table, []):
                key = {name: item[name] for name in key_attrs}
                found[identity(item_to_document(key, key_attrs)["_id"])] = item
            pending = response.get("UnprocessedKeys") or {}
            if pending:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
    return found


def batch_write(dynamodb: Any, table: str, puts: list[tuple[Event, dict[str, Any]]]) -> list[tuple[Event, str]]:
    """Put the items; returns those DynamoDB refused, each with its reason.

    A batch DynamoDB refuses as a whole (one item it cannot hold fails all 25) is retried item by
    item, so that only the refused item is held back.
    """
    refused: list[tuple[Event, str]] = []
    for start in range(0, len(puts), BATCH_WRITE_LIMIT):
        chunk = puts[start : start + BATCH_WRITE_LIMIT]
        pending = {table: [{"PutRequest": {"Item": item}} for _, item in chunk]}
        delay = 0.05
        try:
            while pending:
                pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                if pending:
                    # Throttled: back off before retrying only what was not processed.
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ITEM_REFUSALS:
                raise
            for event, item in chunk:
                try:
                    dynamodb.put_item(TableName=table, Item=item)
                except ClientError as single:
                    if single.response.get("Error", {}).get("Code") not in ITEM_REFUSALS:
                        raise
                    refused.append((event, f"DynamoDB refused the item: {single.response['Error'].get('Message')}"))
    return refused
