"""Per-key sync state, kept where the application does not write (DESIGN §6 and §7).

One document per table and key in the metadata database (``sync_keys``, ``_id = {t, k}``):

- ``seq``: the newest stream sequence number forward sync has applied or decided for the key. A
  record at or below it is a replay (a redelivered batch, a relay restarted before its checkpoint),
  whatever the application did to the document meanwhile: a ``replace_one`` erases ``_ddb`` but
  not this.
- ``h``: the content hash (dynamo2mongo.mapping.canonical, a tombstone for an absent key) of the version
  both stores last agreed on, set by forward sync after applying a record and by backward sync
  before writing a MongoDB change to DynamoDB. A MongoDB document whose content differs from it
  holds an application change that has not reached DynamoDB yet.
- ``t``: the type hints of that version, so that a document rewritten without ``_ddb`` gets its
  DynamoDB types back (dynamo2mongo.sync.typememory).
- ``ttl``: the last forward change was a TTL expiry (DynamoDB's own delete).
- ``bpos``: the change-stream position (cluster time) of the newest MongoDB change of the key that
  backward sync has processed: a replayed change (a resume token rolled back, a relay restarted
  before its checkpoint) is not written again, for its exact post-image may be older than what
  DynamoDB holds now. ``bnext``: the position of a change whose DynamoDB write is about to be made.
- ``next``: ``{seq, h}`` of the write forward sync is about to make, noted before it and removed
  after: a relay that stopped in between tells on restart whether the write landed (the key's
  content is ``h``) instead of taking its own write for an application change.

These documents do not expire: ``h`` must outlive any pause of either relay, or an application
change made long ago would look pending again. There is at most one per key the sync touched.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError
from pymongo.database import Database

from dynamo2mongo.sync.echo import identity

KEYS = "sync_keys"


@dataclass(frozen=True)
class KeyState:
    seq: str = ""
    h: str | None = None
    t: list | None = None
    ttl: bool = False
    next_seq: str = ""
    next_h: str | None = None
    bpos: int = 0
    bnext: int = 0
    at: dt.datetime | None = None


class KeyStates:
    def __init__(self, database: Database, table: str):
        self.collection = database[KEYS]
        self.table = table

    def _id(self, document_id: Any) -> dict[str, Any]:
        return {"t": self.table, "k": document_id}

    def read(self, document_ids: list[Any]) -> dict[bytes, KeyState]:
        if not document_ids:
            return {}
        found = self.collection.find({"_id": {"$in": [self._id(i) for i in document_ids]}})
        return {
            identity(d["_id"]["k"]): KeyState(d.get("seq") or "", d.get("h"), d.get("t"), bool(d.get("ttl")),
                                              (d.get("next") or {}).get("seq") or "", (d.get("next") or {}).get("h"),
                                              d.get("bpos") or 0, d.get("bnext") or 0, d.get("at"))
            for d in found
        }

    def intend_forward(self, writes: list[tuple[Any, str, str]]) -> None:
        """Before forward sync's writes: ``(document_id, seq, hash)`` of each."""
        if writes:
            self.collection.bulk_write(
                [UpdateOne({"_id": self._id(k)}, {"$set": {"next": {"seq": seq, "h": h}}, "$setOnInsert": {"seq": ""}},
                           upsert=True)
                 for k, seq, h in writes],
                ordered=False,
            )

    def record_forward(self, entries: list[tuple[Any, str, dict[str, Any]]], at: dt.datetime) -> None:
        """After forward sync's writes: ``(document_id, newest seq, fields)``; ``fields`` holds what
        changed of ``h``, ``t`` and ``ttl``."""
        if entries:
            self.collection.bulk_write(
                [UpdateOne({"_id": self._id(k)}, {"$max": {"seq": seq}, "$set": {**fields, "at": at},
                                                  "$unset": {"next": ""}}, upsert=True)
                 for k, seq, fields in entries],
                ordered=False,
            )

    def record_backward(self, entries: list[tuple[Any, str, list | None, int | None]], at: dt.datetime,
                        read: dict[bytes, KeyState] | None = None) -> set[bytes]:
        """Before backward sync's writes: ``(document_id, hash, hints, position)``: what both stores
        will hold, and the position of the change that makes it.

        With ``read``, each key's state is written only if it is still as read there (absent: there
        was none); the keys whose state forward sync moved meanwhile are returned, unwritten, for
        backward sync to decide again. Otherwise a version backward sync decided on before forward
        sync wrote a DynamoDB change would replace forward's record of that change, and the echo of
        backward's write would look like an application change in MongoDB."""
        if not entries:
            return set()
        updates = []
        for k, h, t, position in entries:
            fields: dict[str, Any] = {"h": h, "t": t, "at": at, "ttl": False}
            if position is not None:
                fields["bnext"] = position
            where = {"_id": self._id(k)} if read is None else self._as_read(k, read.get(identity(k)))
            updates.append(UpdateOne(where,
                                     {"$set": fields, "$setOnInsert": {"seq": ""}}, upsert=True))
        try:
            self.collection.bulk_write(updates, ordered=False)
        except BulkWriteError as error:
            # A filter that no longer matches turns the upsert into an insert of an _id that exists.
            moved = {identity(entries[e["index"]][0]) for e in error.details["writeErrors"] if e.get("code") == 11000}
            if len(moved) < len(error.details["writeErrors"]):
                raise
            return moved
        return set()

    def _as_read(self, document_id: Any, state: KeyState | None) -> dict[str, Any]:
        if state is None:
            return {"_id": self._id(document_id), "seq": {"$exists": False}}
        return {"_id": self._id(document_id), "seq": state.seq if state.seq else {"$in": ["", None]}, "h": state.h,
                "next.seq": state.next_seq if state.next_seq else None}

    def processed_backward(self, positions: list[tuple[Any, int]]) -> None:
        """After backward sync's writes: the newest change of each key it has processed."""
        if positions:
            self.collection.bulk_write(
                [UpdateOne({"_id": self._id(k)}, {"$max": {"bpos": p}, "$setOnInsert": {"seq": ""}}, upsert=True)
                 for k, p in positions],
                ordered=False,
            )
