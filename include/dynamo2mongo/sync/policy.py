"""Conflicts (DESIGN §6): which side wrote last, how a resolution is marked, and the winner written
over the loser's version (forward sync's winners to DynamoDB, backward sync's to MongoDB)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import bson
from pymongo.collection import Collection

from dynamo2mongo.mapping import RESERVED, document_to_item
from dynamo2mongo.mapping.canonical import content_hash
from dynamo2mongo.sync.echo import TO_DYNAMODB, TO_MONGODB, TOMBSTONE, EchoLedger
from dynamo2mongo.sync.keystate import KeyStates
from dynamo2mongo.sync.typememory import restore

# The ledger token of a MongoDB write that resolved a conflict: backward sync meeting an older
# application change of that key knows it already lost and was reported.
CONFLICT_TOKEN = "c"


def precision(at: dt.datetime) -> float:
    """The precision a time was given with, in seconds: DynamoDB Streams round
    ApproximateCreationDateTime down to the second; a change event's ``wallTime`` has milliseconds
    (its ``clusterTime`` fallback, on servers without it, whole seconds). A time with a fraction is
    taken as given to the millisecond."""
    return 1.0 if at.microsecond == 0 else 0.001


def later(dynamodb_at: dt.datetime, mongodb_at: dt.datetime) -> str:
    """Which side wrote last, ``"dynamodb"`` or ``"mongodb"``, each time known to its precision.

    Each write happened in ``[at, at + precision)``. Where the two intervals overlap the order is
    unknown, and the tie goes to DynamoDB, the store of record until cut-over.
    """
    if mongodb_at >= dynamodb_at + dt.timedelta(seconds=precision(dynamodb_at)):
        return "mongodb"
    return "dynamodb"


def reassert(sync: Any, winners: list[tuple[Any, dict[str, list[str]]]]) -> None:
    """Write DynamoDB's winning version back over the MongoDB version backward sync put there.

    Only while DynamoDB still holds one of those versions: had DynamoDB changed again since, its
    newer change is in the stream and wins on its own.
    """
    for change, losers in winners:
        held = sync.dynamodb.get_item(TableName=sync.source_table, Key=change.keys, ConsistentRead=True).get("Item")
        if (content_hash(held) if held else TOMBSTONE) not in losers:
            continue
        notes = sync.ledger.intend(TO_DYNAMODB, [(change.id, change.hash)], change.created)
        if change.document is None:
            sync.dynamodb.delete_item(TableName=sync.source_table, Key=change.keys)
        else:
            sync.dynamodb.put_item(TableName=sync.source_table, Item=document_to_item(change.document))
        sync.ledger.confirm(TO_DYNAMODB, notes)


def reassert_current(sync: Any, contested: list[tuple[Any, dict[str, Any] | None]]) -> None:
    """Write MongoDB's version, the winner of a conflict, back over an overruled write that reached
    DynamoDB after the resolution; only while DynamoDB holds that overruled write."""
    for echo, document in contested:
        held = sync.dynamodb.get_item(TableName=sync.source_table, Key=echo.keys, ConsistentRead=True).get("Item")
        if (content_hash(held) if held else TOMBSTONE) != echo.hash:
            continue
        item = document_to_item(restore(document, None, sync.types)[0]) if document is not None else None
        notes = sync.ledger.intend(TO_DYNAMODB, [(echo.id, content_hash(item) if item else TOMBSTONE)], echo.created)
        if item is None:
            sync.dynamodb.delete_item(TableName=sync.source_table, Key=echo.keys)
        else:
            sync.dynamodb.put_item(TableName=sync.source_table, Item=item)
        sync.ledger.confirm(TO_DYNAMODB, notes)


def write_mongodb(collection: Collection, ledger: EchoLedger, keys: KeyStates, event: Any,
                   document: dict[str, Any] | None) -> None:
    """Write a version that won a conflict to MongoDB as a sync write: noted first, by a token of its
    own in its mark, so that this relay meets its change event as an echo."""
    token = f"b{bson.ObjectId()}"
    if document is None:
        keys.record_backward([(event.id, TOMBSTONE, None, None)], event.at)
        notes = ledger.intend_tokens(TO_MONGODB, [(event.id, TOMBSTONE, token)], event.at)
        collection.delete_one({"_id": event.id})
    else:
        document = dict(document)
        reserved = dict(document.get(RESERVED) or {})
        reserved["sync"] = {**(reserved.get("sync") or {}), "w": token}
        document[RESERVED] = reserved
        keys.record_backward([(event.id, content_hash(document_to_item(document)), reserved.get("t"), None)], event.at)
        notes = ledger.intend_tokens(TO_MONGODB, [(event.id, token, token)], event.at)
        collection.replace_one({"_id": event.id}, document, upsert=True)
    ledger.confirm(TO_MONGODB, notes)
