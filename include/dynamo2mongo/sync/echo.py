"""The echo ledger and the conflict log (DESIGN §6 and §7).

Every write one sync direction makes is recorded here, under a token of its own, before it is
made; the other direction, meeting that write coming back, skips it exactly once (DESIGN §6: by
write identity, never by content):

- ``to_mongodb``: forward sync's writes (slot: the record's sequence number, which the written
  document's mark carries; ``-`` for a delete) and backward sync's own writes to MongoDB (slot: the
  ``w`` token of their mark). Backward sync finds the slot in the insert or replace event of exactly
  that write; a token starting with ``c`` says the write resolved a conflict.
- ``to_dynamodb``: backward sync's writes (slot: the content hash, ``-`` for a delete; one token
  per write). DynamoDB Streams name no writer, so the write is known by its key and content, met
  once per token in stream order; a content written twice has two tokens and two echoes.

An entry still pending for a key is also how either direction knows that the other side changed the
key and the change has not come back yet: a change arriving meanwhile was made on both sides inside
the replication window, a conflict.

One document per table, direction and key (``_id`` = ``{t, d, k}``): its fields ``i`` (about to be
written), ``w`` (written), ``o`` (overruled: a conflict resolution wrote over them, so their echoes
are met but not applied) and ``c`` (met, with the record's sequence number or the change event's
id, so a replay after a crash meets them again). An intent becomes a write by a ``$rename`` of its
token, which does nothing once the echo consumed it: a fast echo cannot be brought back to life by
the late note that the write was made. Noting an intent replaces an unconfirmed intent of the same
slot that a crashed writer left. Entries expire after the stream retention; nothing older can echo.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import bson
from pymongo import UpdateOne
from pymongo.errors import DuplicateKeyError
from pymongo.database import Database

ECHOES = "echoes"
CONFLICTS = "conflicts"
DEFERRED = "deferred_conflicts"
TO_DYNAMODB = "to_dynamodb"
TO_MONGODB = "to_mongodb"
TOMBSTONE = "-"
INTENDED = "i"
WRITTEN = "w"
# Met echoes stay, with the sequence number of the record (forward) or the id of the change event
# (backward) that brought them back: a replay after a crash meets the same records again and must
# still take them for echoes.
MET = "c"
# Writes a conflict resolution overruled: DynamoDB's winner was written back over them, so their
# echoes, still on their way, are met but not applied.
OVERRULED = "o"
APPLIES = "applies"


def identity(document_id: Any) -> bytes:
    return bson.encode({"k": document_id})


# (document_id, content hash, token): one write and its ledger entry.
Note = tuple[Any, str, str]


@dataclass
class LedgerEntry:
    """One key's entry in one direction, as read at the start of a batch; ``meet`` consumes."""

    document_id: Any = None
    pending: dict[str, list[str]] = field(default_factory=dict)
    overruled: dict[str, list[str]] = field(default_factory=dict)
    met: dict[str, str] = field(default_factory=dict)
    changed_at: dt.datetime | None = None

    def meet(self, change: Any) -> tuple[str, Note | None] | None:
        """Whether ``change`` (with ``hash`` and ``seq``) is the echo of a noted write: ``(APPLIES or
        OVERRULED, the note it consumes)``, ``(APPLIES, None)`` for one met before a restart, or None."""
        if self.met.get(change.hash, "") >= change.seq:
            return APPLIES, None
        for kind, slots in ((OVERRULED, self.overruled), (APPLIES, self.pending)):
            tokens = slots.get(change.hash)
            if tokens:
                note = (change.id, change.hash, tokens.pop(0))
                if not tokens:
                    del slots[change.hash]
                return kind, note
        return None


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

    def lookup(self, direction: str, document_ids: list[Any]) -> dict[bytes, LedgerEntry]:
        """Every key's entry in one read: pending writes (written ones first), overruled ones, met ones."""
        if not document_ids:
            return {}
        found: dict[bytes, LedgerEntry] = {}
        for doc in self.collection.find({"_id": {"$in": [self._id(direction, i) for i in document_ids]}}):
            entry = LedgerEntry(doc["_id"]["k"], met=doc.get(MET) or {}, changed_at=doc.get("at"))
            for state in (WRITTEN, INTENDED):
                for h, tokens in (doc.get(state) or {}).items():
                    if tokens:
                        entry.pending.setdefault(h, []).extend(sorted(tokens))
            for h, tokens in (doc.get(OVERRULED) or {}).items():
                if tokens:
                    entry.overruled[h] = sorted(tokens)
            found[identity(entry.document_id)] = entry
        return found

    def intend(self, direction: str, writes: list[tuple[Any, str]], at: dt.datetime | list[dt.datetime]) -> list[Note]:
        """Note writes (``(document_id, hash)``) about to be made: their echo may come back any time now.
        ``at``: when the change behind each write was made (one time for all, or one per write)."""
        return self.intend_tokens(direction, [(k, h, str(bson.ObjectId())) for k, h in writes], at)

    def intend_tokens(self, direction: str, notes: list[Note], at: dt.datetime | list[dt.datetime]) -> list[Note]:
        """``intend`` with the writes' own tokens (forward sync's: the record's sequence number)."""
        if notes:
            times = at if isinstance(at, list) else [at] * len(notes)
            self.collection.bulk_write(
                [UpdateOne({"_id": self._id(direction, k)}, {"$set": {f"{INTENDED}.{h}": {t: 1}, "at": moment}},
                           upsert=True)
                 for (k, h, t), moment in zip(notes, times)],
                ordered=False,
            )
        return notes

    def confirm(self, direction: str, notes: list[Note]) -> None:
        """The intended writes were made; an entry whose echo already came back stays consumed."""
        if notes:
            self.collection.bulk_write(
                [UpdateOne({"_id": self._id(direction, k)}, {"$rename": {f"{INTENDED}.{h}.{t}": f"{WRITTEN}.{h}.{t}"}})
                 for k, h, t in notes],
                ordered=False,
            )

    def pending(self, direction: str, document_ids: list[Any]) -> dict[bytes, dict[str, list[str]]]:
        """Unconsumed writes per key: ``{identity: {hash: tokens}}``."""
        return {k: e.pending for k, e in self.lookup(direction, document_ids).items() if e.pending}

    def overrule(self, direction: str, notes: list[Note]) -> None:
        """A conflict resolution wrote over these writes: their echoes are to be met, not applied."""
        if notes:
            updates = []
            for k, h, t in notes:
                for state in (INTENDED, WRITTEN):
                    updates.append(UpdateOne({"_id": self._id(direction, k)},
                                              {"$rename": {f"{state}.{h}.{t}": f"{OVERRULED}.{h}.{t}"}}))
            self.collection.bulk_write(updates, ordered=True)

    def withdraw(self, direction: str, notes: list[Note]) -> None:
        """Intended writes that turned out to change nothing: no echo will come back for them."""
        if notes:
            self.collection.bulk_write(
                [UpdateOne({"_id": self._id(direction, k)}, {"$unset": {f"{INTENDED}.{h}.{t}": ""}})
                 for k, h, t in notes],
                ordered=False,
            )

    def forget_written(self, direction: str) -> int:
        """Drop the confirmed writes of one direction: a change stream starting now will never read
        their events. (A write only noted may still be made after; it stays.)"""
        return self.collection.update_many({"_id.t": self.table, "_id.d": direction},
                                           {"$unset": {WRITTEN: ""}}).modified_count

    def consume(self, direction: str, echoes: list[Note], seqs: list[str] | None = None,
                events: list[str] | None = None) -> None:
        """The writes whose echo was met stop being pending, whether confirmed yet or not; with
        ``seqs`` (the records that brought them back) or ``events`` (the ids of the change events)
        they are kept as met, for replays."""
        if echoes:
            updates = []
            for position, (k, h, t) in enumerate(echoes):
                update: dict[str, Any] = {"$unset": {f"{INTENDED}.{h}.{t}": "", f"{WRITTEN}.{h}.{t}": "",
                                                     f"{OVERRULED}.{h}.{t}": ""}}
                if seqs is not None:
                    update["$max"] = {f"{MET}.{h}": seqs[position]}
                if events is not None:
                    update["$set"] = {f"{MET}.{h}": events[position]}
                updates.append(UpdateOne({"_id": self._id(direction, k)}, update))
            self.collection.bulk_write(updates, ordered=False)

    def report_conflict(self, document_id: Any, policy: str, resolution: str, dynamodb: Any, mongodb: Any,
                        at: dt.datetime, detail: str, *, dynamodb_at: dt.datetime | None = None,
                        mongodb_at: dt.datetime | None = None) -> None:
        """Every conflict is kept with both versions and both sides' times (with their precision),
        whatever the policy decided."""
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
                "times": {
                    side: {"at": moment, "precision_seconds": None if moment is None else
                           (1.0 if moment.microsecond == 0 else 0.001)}
                    for side, moment in (("dynamodb", dynamodb_at), ("mongodb", mongodb_at))
                },
            }
        )

    # ---- conflicts ``latest_wins`` leaves to backward sync ----------------------------------------

    def defer(self, document_id: Any, created: dt.datetime, seq: str, document: dict[str, Any] | None) -> None:
        """Forward sync met a conflict whose MongoDB side it cannot date: backward sync decides.

        ``document`` is DynamoDB's version as forward sync would write it (None for a delete). A
        record's conflict is deferred once: the entry stays, decided, so that the record replayed
        (its relay stopped before recording the key's state) does not wait for a MongoDB change again.
        """
        key = {"t": self.table, "k": document_id}
        try:
            self.waiting.update_one(
                {"_id": key, "seq": {"$lt": seq}},
                {"$set": {"created": created, "seq": seq, "document": document, "decided": False}},
                upsert=True,
            )
        except DuplicateKeyError:
            pass  # deferred before, for this record or a later one

    def deferred(self, document_ids: list[Any]) -> dict[bytes, dict[str, Any]]:
        """The keys' conflicts waiting for backward sync's decision."""
        if not document_ids:
            return {}
        found = self.waiting.find({"_id": {"$in": [{"t": self.table, "k": i} for i in document_ids]},
                                   "decided": {"$ne": True}})
        return {identity(entry["_id"]["k"]): entry for entry in found}

    def clear_deferred(self, document_ids: list[Any]) -> None:
        if document_ids:
            self.waiting.update_many({"_id": {"$in": [{"t": self.table, "k": i} for i in document_ids]}},
                                     {"$set": {"decided": True}})

    def resolve_deferred(self, document_id: Any, policy: str, winner: str, waiting: dict[str, Any],
                         mongodb: Any, at: dt.datetime) -> None:
        self.report_conflict(
            document_id,
            policy,
            winner,
            waiting.get("document"),
            mongodb,
            at,
            dynamodb_at=waiting["created"],
            mongodb_at=at,
            detail=f"decided by backward sync: DynamoDB change at {waiting['created'].isoformat()}, MongoDB change at "
            f"{at.isoformat()}",
        )
