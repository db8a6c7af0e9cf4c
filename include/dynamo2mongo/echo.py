"""The echo ledger and the conflict log (DESIGN §6 and §7).

Every write one sync direction makes is recorded here before it is made; the other direction,
meeting that same change coming back (same key, same content hash, or a tombstone for a delete),
skips it exactly once and removes the entry. An entry still pending for a key is also how either
direction knows that the other side changed the key and the change has not come back yet: a change
arriving meanwhile was made on both sides inside the replication window, a conflict.

One document per table, direction and key (``_id`` = ``{t, d, k}``), so every read and write is an
exact ``_id`` match; its fields ``i`` (about to be written) and ``w`` (written) hold the content
hashes (``-`` for a delete) of writes whose echo has not come back. An intent becomes a write by a
``$rename``, which does nothing once the echo consumed the entry: a fast echo cannot be brought
back to life by the late note that the write was made. Entries expire after the stream retention;
nothing older can echo.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import bson
from pymongo import UpdateOne
from pymongo.database import Database

ECHOES = "echoes"
CONFLICTS = "conflicts"
DEFERRED = "deferred_conflicts"
TO_DYNAMODB = "to_dynamodb"
TO_MONGODB = "to_mongodb"
TOMBSTONE = "-"
INTENDED = "i"
WRITTEN = "w"
# Met echoes stay, with the sequence number of the record that brought them back: a forward replay
# after a crash meets the same records again and must still take them for echoes.
MET = "c"


def identity(document_id: Any) -> bytes:
    return bson.encode({"k": document_id})


class EchoLedger:
    def __init__(self, database: Database, table: str, retention_hours: int = 48):
        self.collection = database[ECHOES]
        self.conflicts = database[CONFLICTS]
        self.waiting = database[DEFERRED]
        self.table = table
        self.retention_hours = retention_hours

    def _id(self, direction: str, document_id: Any) -> dict[str, Any]:
        return {"t": self.table, "d": direction, "k": document_id}

    def ensure_indexes(self) -> None:
        self.collection.create_index("at", expireAfterSeconds=self.retention_hours * 3600, name="expire_after_retention")

    def pending(self, direction: str, document_ids: list[Any]) -> dict[bytes, dict[str, str]]:
        """Unconsumed entries per key: ``{identity: {hash: state}}``."""
        if not document_ids:
            return {}
        wanted = [self._id(direction, i) for i in document_ids]
        found = {}
        for doc in self.collection.find({"_id": {"$in": wanted}}):
            entries = {h: INTENDED for h in doc.get(INTENDED) or {}}
            entries.update({h: WRITTEN for h in doc.get(WRITTEN) or {}})
            found[identity(doc["_id"]["k"])] = entries
        return found

    def met(self, direction: str, document_ids: list[Any]) -> dict[bytes, dict[str, str]]:
        """Echoes already met per key: ``{identity: {hash: sequence number of the record}}``."""
        if not document_ids:
            return {}
        wanted = [self._id(direction, i) for i in document_ids]
        return {identity(d["_id"]["k"]): d.get(MET) or {} for d in self.collection.find({"_id": {"$in": wanted}})}

    def changed_at(self, direction: str, document_id: Any) -> dt.datetime | None:
        """When the change behind a key's latest entry was made (for ``latest_wins``)."""
        entry = self.collection.find_one({"_id": self._id(direction, document_id)}, {"at": 1})
        at = (entry or {}).get("at")
        return at.replace(tzinfo=dt.timezone.utc) if at is not None and at.tzinfo is None else at

    def intend(self, direction: str, writes: list[tuple[Any, str]], at: dt.datetime) -> None:
        """Note writes (``(document_id, hash)``) about to be made: their echo may come back any time now."""
        if writes:
            self.collection.bulk_write(
                [UpdateOne({"_id": self._id(direction, k)}, {"$set": {f"{INTENDED}.{h}": 1, "at": at}}, upsert=True)
                 for k, h in writes],
                ordered=False,
            )

    def confirm(self, direction: str, writes: list[tuple[Any, str]]) -> None:
        """The intended writes were made; an entry whose echo already came back stays consumed."""
        if writes:
            self.collection.bulk_write(
                [UpdateOne({"_id": self._id(direction, k)}, {"$rename": {f"{INTENDED}.{h}": f"{WRITTEN}.{h}"}})
                 for k, h in writes],
                ordered=False,
            )

    def note_written(self, direction: str, writes: list[tuple[Any, str]], at: dt.datetime) -> None:
        """Note writes about to be made at once, one by one: the note cannot outlive a missed write."""
        if writes:
            self.collection.bulk_write(
                [UpdateOne({"_id": self._id(direction, k)}, {"$set": {f"{WRITTEN}.{h}": 1, "at": at}}, upsert=True)
                 for k, h in writes],
                ordered=False,
            )

    def forget(self, direction: str) -> int:
        """Drop every entry of one direction: for writes whose echoes can no longer be met."""
        return self.collection.delete_many({"_id.t": self.table, "_id.d": direction}).deleted_count

    def consume(self, direction: str, echoes: list[tuple[Any, str]], seqs: list[str] | None = None) -> None:
        """Entries whose echo was met stop being pending; with ``seqs`` (the records that brought them
        back) they are kept as met, for replays."""
        if echoes:
            updates = []
            for position, (k, h) in enumerate(echoes):
                update: dict[str, Any] = {"$unset": {f"{INTENDED}.{h}": "", f"{WRITTEN}.{h}": ""}}
                if seqs is not None:
                    update["$max"] = {f"{MET}.{h}": seqs[position]}
                updates.append(UpdateOne({"_id": self._id(direction, k)}, update))
            self.collection.bulk_write(updates, ordered=False)

    def report_conflict(self, document_id: Any, policy: str, resolution: str, dynamodb: Any, mongodb: Any,
                        at: dt.datetime, detail: str) -> None:
        """Every conflict is kept with both versions, whatever the policy decided."""
        self.conflicts.insert_one(
            {
                "table": self.table,
                "key": document_id,
                "policy": policy,
                "resolution": resolution,
                "dynamodb": dynamodb,
                "mongodb": mongodb,
                "detail": detail,
                "at": at,
            }
        )

    # ---- conflicts ``latest_wins`` leaves to backward sync ----------------------------------------

    def defer(self, document_id: Any, created: dt.datetime, seq: str, document: dict[str, Any] | None) -> None:
        """Forward sync met a conflict whose MongoDB side it cannot date: backward sync decides.

        ``document`` is DynamoDB's version as forward sync would write it (None for a delete).
        """
        self.waiting.replace_one(
            {"_id": {"t": self.table, "k": document_id}},
            {"_id": {"t": self.table, "k": document_id}, "created": created, "seq": seq, "document": document},
            upsert=True,
        )

    def deferred(self, document_ids: list[Any]) -> dict[bytes, dict[str, Any]]:
        if not document_ids:
            return {}
        found = self.waiting.find({"_id": {"$in": [{"t": self.table, "k": i} for i in document_ids]}})
        result = {}
        for entry in found:
            created = entry["created"]
            entry["created"] = created.replace(tzinfo=dt.timezone.utc) if created.tzinfo is None else created
            result[identity(entry["_id"]["k"])] = entry
        return result

    def clear_deferred(self, document_ids: list[Any]) -> None:
        if document_ids:
            self.waiting.delete_many({"_id": {"$in": [{"t": self.table, "k": i} for i in document_ids]}})

    def resolve_deferred(self, document_id: Any, policy: str, winner: str, waiting: dict[str, Any],
                         mongodb: Any, at: dt.datetime) -> None:
        self.report_conflict(
            document_id,
            policy,
            winner,
            waiting.get("document"),
            mongodb,
            at,
            f"decided by backward sync: DynamoDB change at {waiting['created'].isoformat()}, MongoDB change at "
            f"{at.isoformat()}",
        )
