"""Retrying quarantined sync changes once the data is fixed (``dynamo2mongo quarantine retry``).

A quarantined change is not replayed as it was: the key's current state is synced instead, through
the same apply functions and guards as the relays, so a retry can never bring back an older version.

- backward: the MongoDB document as it is now (or its absence) goes to DynamoDB as an application
  change would;
- forward: the DynamoDB item as it is now (a consistent read), or its absence, goes to MongoDB as
  the quarantined stream record would have, under that record's sequence number (later records of
  the key, had any synced, would have resolved the entry).

An entry whose change still cannot be written stays, with the new reason.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from dynamo2mongo.sync import backward, forward
from dynamo2mongo.sync import dynamodb_items
from dynamo2mongo.sync.events import Event
from dynamo2mongo.sync import records
from dynamo2mongo.sync.echo import TOMBSTONE, EchoLedger
from dynamo2mongo.sync.keystate import KeyStates
from dynamo2mongo.sync.quarantine import Quarantine
from dynamo2mongo.sync.typememory import TableTypes
from dynamo2mongo.mapping import RESERVED, Unrepresentable


@dataclass
class RetryResult:
    retried: int = 0
    synced: int = 0
    still_quarantined: int = 0


def retry(config: Any, key_attrs: tuple[str, ...], dynamodb: Any, mongo: Any, direction: str | None = None) -> RetryResult:
    meta = mongo[config.metadata_database]
    collection = mongo[config.database][config.collection]
    quarantine = Quarantine(meta, config.name)
    keys = KeyStates(meta, config.name)
    ledger = EchoLedger(meta, config.name)
    types = TableTypes(meta, config.name)
    sync = forward.SyncContext(ledger, config.sync.conflict_policy, dynamodb, config.source_table, types)
    result = RetryResult()
    now = dt.datetime.now(dt.timezone.utc)
    for entry in quarantine.entries(direction):
        key = entry["key"]
        result.retried += 1
        if entry["direction"] == backward.DIRECTION:
            document = collection.find_one({"_id": key})
            event = Event(key, "upsert" if document is not None else "delete", document, now, None)
            backward.apply_events([event], dynamodb=dynamodb, source_table=config.source_table, key_attrs=key_attrs,
                                  collection=collection, ledger=ledger, policy=config.sync.conflict_policy, keys=keys,
                                  quarantine=quarantine, bson_mapping=config.sync.bson_mapping, types=types)
        else:
            dynamodb_key = dynamodb_items.dynamodb_key(key, key_attrs)
            item = dynamodb.get_item(TableName=config.source_table, Key=dynamodb_key, ConsistentRead=True).get("Item")
            seq = records.padded(entry.get("position") or "0")
            try:
                change = _change(key, item, dynamodb_key, seq, now, key_attrs, config.number_mapping)
            except Unrepresentable as error:
                quarantine.put(forward.DIRECTION, key, error.reason, item, position=entry.get("position"))
            else:
                forward.apply_changes([change], collection, keys, config.name, sync, quarantine)
        still = any(e["key"] == key and e["direction"] == entry["direction"] for e in quarantine.entries(entry["direction"]))
        result.still_quarantined += int(still)
        result.synced += int(not still)
    return result


def _change(key: Any, item: dict[str, Any] | None, keys: dict[str, Any], seq: str, at: dt.datetime,
            key_attrs: tuple[str, ...], number_mapping: str) -> records.Change:
    if item is None:
        return records.Change(key, seq, at, "REMOVE", None, TOMBSTONE, keys)
    document = records.synced_document(item, key_attrs, seq, at, number_mapping)
    return records.Change(key, seq, at, "MODIFY", document, document[RESERVED]["sync"]["h"], keys)
