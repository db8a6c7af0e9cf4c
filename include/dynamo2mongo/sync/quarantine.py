"""The sync quarantine: changes that cannot be written to the other side, so the table keeps syncing.

One entry per (table, direction, key) in the metadata database's ``quarantine`` collection, next to
the full load's bad records (whose ``_id`` has ``table``/``export_id``/``file``/``line``; these have
``t``/``d``/``k``, so neither kind matches the other's queries). ``direction`` is ``forward``
(DynamoDB -> MongoDB) or ``backward`` (MongoDB -> DynamoDB); ``key`` is the document ``_id``.

An entry holds the latest poison change of its key: a later one replaces ``raw``, ``reason`` and
``position`` and counts once more; the same change put again (a replay after a crash, a redelivered
batch: same position) does not count again. Once a later change of the key syncs, the caller
``resolve``s it. ``raw`` is kept as BSON when the server stores it unchanged, else as canonical
Extended JSON text (``raw_format: extjson``): a DynamoDB record of an attribute named ``$price`` is
poison precisely because MongoDB will not take that name.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import bson
from bson import json_util
from bson.errors import InvalidDocument
from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from dynamo2mongo.state import QUARANTINE

DIRECTIONS = ("forward", "backward")
# The entry must stay under MongoDB's 16 MiB document limit with its key, reason and position.
_RAW_LIMIT = 15 * 1024 * 1024
_INDEX = "sync_quarantine_by_table"


def ensure_indexes(meta: Database) -> None:
    """The index that counts and lists a table's entries; status and the dashboard only read."""
    meta[QUARANTINE].create_index([("table", ASCENDING), ("direction", ASCENDING), ("last_at", DESCENDING)],
                                  name=_INDEX)


def _plain_names(value: Any) -> bool:
    """Whether every field name can be stored as it is by any server: no leading '$', no '.' or NUL."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and not k.startswith("$") and "." not in k and "\x00" not in k
                   and _plain_names(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain_names(v) for v in value)
    return True


def _stored_raw(raw: Any) -> dict[str, Any]:
    if _plain_names(raw):
        try:
            if len(bson.encode({"raw": raw})) <= _RAW_LIMIT:
                return {"raw": raw, "raw_format": "bson"}
        except (InvalidDocument, OverflowError, TypeError, ValueError):
            pass
    try:
        text = json_util.dumps(raw, json_options=json_util.CANONICAL_JSON_OPTIONS)
    except (TypeError, ValueError, OverflowError):
        # Not even Extended JSON (a Python object of no BSON type): its repr is all that can be kept.
        return {"raw": repr(raw)[:_RAW_LIMIT], "raw_format": "repr"}
    if len(text.encode()) <= _RAW_LIMIT:
        return {"raw": text, "raw_format": "extjson"}
    return {"raw": text[:_RAW_LIMIT // 4], "raw_format": "extjson_truncated", "raw_length": len(text)}


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"quarantine direction must be forward or backward, got {direction!r}")


class Quarantine:
    """One table's sync quarantine in its metadata database."""

    def __init__(self, meta: Database, table: str):
        self.meta = meta
        self.table = table
        self._indexed = False

    def _id(self, direction: str, key: Any) -> dict[str, Any]:
        return {"t": self.table, "d": direction, "k": key}

    def put(self, direction: str, key: Any, reason: str, raw: Any, *, position: Any = None) -> None:
        """Keep the change of ``key`` that could not be written; the same change put again counts once."""
        _check_direction(direction)
        if not self._indexed:
            ensure_indexes(self.meta)
            self._indexed = True
        now = dt.datetime.now(dt.timezone.utc)
        entry_id = self._id(direction, key)
        content = {"table": self.table, "direction": direction, "key": key, "reason": reason,
                   "position": position, **_stored_raw(raw)}
        unset = {"raw_length": ""} if "raw_length" not in content else {}
        collection = self.meta[QUARANTINE]
        # ``order`` breaks ties of last_at (milliseconds) between puts, so newest first is exact.
        update = {"$set": {**content, "last_at": now, "order": bson.ObjectId()}, "$setOnInsert": {"first_at": now},
                  "$inc": {"count": 1}}
        if unset:
            update["$unset"] = unset
        if position is None:
            collection.update_one({"_id": entry_id}, update, upsert=True)
            return
        try:
            collection.update_one({"_id": entry_id, "position": {"$ne": position}}, update, upsert=True)
        except DuplicateKeyError:
            # The entry exists at this very position: a replay of the change already counted.
            repeat = {"$set": content, **({"$unset": unset} if unset else {})}
            collection.update_one({"_id": entry_id}, repeat)

    def resolve(self, direction: str, keys: list[Any]) -> int:
        """A later change of these keys synced: their entries go; returns how many there were."""
        _check_direction(direction)
        if not keys:
            return 0
        return self.meta[QUARANTINE].delete_many({"_id": {"$in": [self._id(direction, k) for k in keys]}}).deleted_count

    def entries(self, direction: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Newest first: key, direction, reason, raw (as it was put, unless raw_format says it could not
        be kept), raw_format, position, count, first_at, last_at."""
        if direction is not None:
            _check_direction(direction)
        query = {"table": self.table, "direction": {"$in": [direction] if direction else list(DIRECTIONS)}}
        cursor = self.meta[QUARANTINE].find(query, {"_id": 0, "table": 0, "order": 0}).sort(
            [("last_at", DESCENDING), ("order", DESCENDING)])
        if limit is not None:
            cursor = cursor.limit(limit)
        entries = list(cursor)
        # Dates come back as the database's BSON values would: aware when its client is.
        options = json_util.CANONICAL_JSON_OPTIONS.with_options(tz_aware=self.meta.codec_options.tz_aware,
                                                                 tzinfo=self.meta.codec_options.tzinfo)
        for entry in entries:
            if entry.get("raw_format") == "extjson":
                entry["raw"] = json_util.loads(entry["raw"], json_options=options)
        return entries

    def counts(self) -> dict[str, int]:
        rows = self.meta[QUARANTINE].aggregate([
            {"$match": {"table": self.table, "direction": {"$in": list(DIRECTIONS)}}},
            {"$group": {"_id": "$direction", "n": {"$sum": 1}}},
        ])
        counts = dict.fromkeys(DIRECTIONS, 0)
        counts.update({row["_id"]: row["n"] for row in rows})
        return counts
