"""Backward sync: MongoDB change events applied to DynamoDB (DESIGN §2 and §6).

Used by the change-stream relay. The rules:

- Inserts, updates and replaces write the post-image (``fullDocument: updateLookup``), converted back
  per DESIGN §4 (type hints honoured, ``_id`` and ``_ddb`` never written). Post-images rather than
  update descriptions: they are right on every server, and a key's last event carries its current
  state, so within a batch only the last event per key is written.
- A post-image whose forward mark hashes to its own content is forward sync's write (or a finished
  round trip) coming back: an echo, skipped. An application change alters the content, so it is
  synced even when the mark was copied along.
- A delete that forward sync made is in the echo ledger and skipped once; a delete of a key that
  exists again in MongoDB is superseded by the later write and skipped.
- Every write is noted in the ledger first (intended), made, then noted as written, so forward sync
  skips its echo exactly once. Writes are at least once: a batch replayed after a crash is written
  again, which changes nothing in DynamoDB (its extra echo, if any, finds MongoDB already equal).
- A forward conflict that ``latest_wins`` could not decide (the MongoDB change's time was unknown)
  is decided here, where that time is known.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pymongo import UpdateOne
from pymongo.collection import Collection

from dynamo2mongo.canonical import content_hash
from dynamo2mongo.echo import TO_DYNAMODB, TO_MONGODB, TOMBSTONE, EchoLedger, Note, identity
from dynamo2mongo.forward import in_sync, mark_of, tombstone_id
from dynamo2mongo.keys import key_fields
from dynamo2mongo.types import Unrepresentable, document_to_item, item_to_document

log = logging.getLogger(__name__)

_BATCH_WRITE_LIMIT = 25
_BATCH_GET_LIMIT = 100
ENDING_EVENTS = ("invalidate", "drop", "rename", "dropDatabase")


class BackwardApplyError(RuntimeError):
    """A change cannot be written to DynamoDB; the message names the table and the key."""


class StreamEnded(RuntimeError):
    """The change stream was invalidated (collection dropped or renamed); syncing cannot go on."""


@dataclass(frozen=True)
class Event:
    id: Any
    op: str  # "upsert" or "delete"
    document: dict[str, Any] | None
    at: dt.datetime
    token: Any

    @property
    def identity(self) -> bytes:
        return identity(self.id)


@dataclass
class BackwardResult:
    events: int = 0
    written: int = 0
    deleted: int = 0
    echoes: int = 0
    skipped: int = 0
    collapsed: int = 0
    conflicts: int = 0
    newest_at: dt.datetime | None = None
    # The newest change made in MongoDB by someone other than forward sync (not an echo).
    newest_independent: dt.datetime | None = None
    last_token: Any = None

    def add(self, other: "BackwardResult") -> None:
        for name in ("events", "written", "deleted", "echoes", "skipped", "collapsed", "conflicts"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.newest_at and (self.newest_at is None or other.newest_at > self.newest_at):
            self.newest_at = other.newest_at
        if other.newest_independent and (
            self.newest_independent is None or other.newest_independent > self.newest_independent
        ):
            self.newest_independent = other.newest_independent
        self.last_token = other.last_token or self.last_token

    def counts(self) -> dict[str, int]:
        return {n: getattr(self, n) for n in ("events", "written", "deleted", "echoes", "skipped", "collapsed", "conflicts")}


def to_event(change: dict[str, Any], collection_name: str, still_there: Any = lambda: False) -> Event | None:
    """One change-stream event; None for events that change no document (e.g. createIndexes).

    ``still_there()`` says whether the watched collection exists: some servers (mongo-java-server)
    report every drop in the database, without naming the collection, on a collection's stream.
    """
    operation = change.get("operationType")
    if operation in ENDING_EVENTS:
        ns = change.get("ns") or {}
        if (ns.get("coll") and ns["coll"] != collection_name) or (not ns.get("coll") and still_there()):
            return None
        raise StreamEnded(
            f"the change stream of {collection_name!r} reports {operation!r}: the collection was dropped or "
            f"renamed, so backward sync cannot go on. Restore the collection (or the configuration), clear the "
            f"relay's checkpoint, and verify both sides before restarting"
        )
    cluster_time = change.get("clusterTime")
    at = change.get("wallTime") or (cluster_time.as_datetime() if cluster_time is not None else dt.datetime.now(dt.timezone.utc))
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.timezone.utc)
    token = change.get("_id")
    if operation in ("insert", "update", "replace"):
        document = change.get("fullDocument")
        if not document or "_id" not in document:
            # The document was deleted before its post-image was looked up: the delete event follows.
            key = (change.get("documentKey") or {}).get("_id")
            return Event(key, "gone", None, at, token)
        return Event(document["_id"], "upsert", document, at, token)
    if operation == "delete":
        return Event(change["documentKey"]["_id"], "delete", None, at, token)
    return None


def dynamodb_key(document_id: Any, key_attrs: tuple[str, ...]) -> dict[str, Any]:
    """The DynamoDB key of a document ``_id`` (the convention of dynamo2mongo.keys)."""
    fields = key_fields(key_attrs)
    values = document_id if len(fields) > 1 else {fields[0]: document_id}
    try:
        return document_to_item({f: values[f] for f in fields})
    except (KeyError, TypeError):
        raise BackwardApplyError(f"_id {document_id!r} does not follow the key convention ({', '.join(fields)})") from None


@dataclass
class _Plan:
    puts: list[tuple[Event, dict[str, Any], str]] = field(default_factory=list)
    deletes: list[Event] = field(default_factory=list)
    undo: list[Event] = field(default_factory=list)
    forward_wins: list[tuple[Event, dict[str, Any]]] = field(default_factory=list)


def _recreated_from_older_dynamodb_change(document: dict[str, Any], event: Event) -> bool:
    """Forward sync wrote the key again after the application deleted it, from a DynamoDB change
    made before that delete: both sides changed the key inside the replication window."""
    mark = mark_of(document)
    at = mark.get("at")
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=dt.timezone.utc)
    return in_sync(document) and at is not None and at < event.at


def _delete_wins(ledger: EchoLedger, policy: str, event: Event, document: dict[str, Any]) -> bool:
    wins = policy in ("mongodb_wins", "latest_wins")
    ledger.report_conflict(
        event.id, policy, "mongodb" if wins else "dynamodb", document, None, event.at,
        "the application deleted the key while DynamoDB changed it; forward sync had written the change back",
    )
    return wins


def _current_hashes(dynamodb: Any, table: str, key_attrs: tuple[str, ...], ids: list[Any]) -> dict[bytes, str]:
    """Content hashes of the items DynamoDB holds now for these keys (consistent reads)."""
    found: dict[bytes, str] = {}
    for start in range(0, len(ids), _BATCH_GET_LIMIT):
        keys = [dynamodb_key(i, key_attrs) for i in ids[start : start + _BATCH_GET_LIMIT]]
        pending: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True}}
        delay = 0.05
        while pending:
            response = dynamodb.batch_get_item(RequestItems=pending)
            for item in response.get("Responses", {}).get(table, []):
                key = {name: item[name] for name in key_attrs}
                found[identity(item_to_document(key, key_attrs)["_id"])] = content_hash(item)
            pending = response.get("UnprocessedKeys") or {}
            if pending:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
    return found


def _batch_write(dynamodb: Any, table: str, requests: list[dict[str, Any]]) -> None:
    for start in range(0, len(requests), _BATCH_WRITE_LIMIT):
        pending = {table: requests[start : start + _BATCH_WRITE_LIMIT]}
        delay = 0.05
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if pending:
                # Throttled: back off before retrying only what was not processed.
                time.sleep(delay)
                delay = min(delay * 2, 5.0)


def apply_events(
    events: list[Event],
    *,
    dynamodb: Any,
    source_table: str,
    key_attrs: tuple[str, ...],
    collection: Collection,
    ledger: EchoLedger,
    policy: str,
    tombstones: Collection,
    applied_seq: str | None,
) -> BackwardResult:
    """Write one batch of change events to DynamoDB; safe to repeat.

    ``applied_seq`` is the newest stream sequence number forward sync has applied (its checkpoint).
    """
    result = BackwardResult(events=len(events))
    if not events:
        return result
    result.newest_at = max(e.at for e in events)
    result.last_token = events[-1].token
    forward_deletes = ledger.pending(TO_MONGODB, [e.id for e in events if e.op == "delete"])
    consumed: list[Note] = []
    latest: dict[bytes, Event] = {}
    for event in events:
        if event.op == "gone":
            result.skipped += 1
            continue
        if event.op == "upsert" and in_sync(event.document):
            result.echoes += 1
            continue
        if event.op == "delete" and forward_deletes.get(event.identity, {}).get(TOMBSTONE):
            consumed.append((event.id, TOMBSTONE, forward_deletes[event.identity][TOMBSTONE].pop(0)))
            result.echoes += 1
            continue
        if event.identity in latest:
            result.collapsed += 1
            del latest[event.identity]
        latest[event.identity] = event
    if latest:
        result.newest_independent = max(e.at for e in latest.values())
    deferred = ledger.deferred([e.id for e in latest.values()])
    plan = _Plan()
    deleted_ids = [e.id for e in latest.values() if e.op == "delete"]
    still_there = {identity(d["_id"]): d for d in collection.find({"_id": {"$in": deleted_ids}})} if deleted_ids else {}
    for event in latest.values():
        if event.op == "delete":
            document = still_there.get(event.identity)
            if document is None:
                plan.deletes.append(event)
            elif _recreated_from_older_dynamodb_change(document, event) and _delete_wins(
                ledger, policy, event, document
            ):
                result.conflicts += 1
                plan.deletes.append(event)
                plan.undo.append(event)
            else:
                # Written again after the delete (by the application, or by forward sync from a newer
                # DynamoDB change): the delete is superseded.
                result.conflicts += int(_recreated_from_older_dynamodb_change(document, event))
                result.skipped += 1
            continue
        try:
            item = document_to_item(event.document)
        except Unrepresentable as error:
            raise BackwardApplyError(
                f"table {source_table!r}: document _id={event.id!r} cannot be written to DynamoDB: {error.reason}. "
                f"Fix the document in MongoDB; the relay resumes from this change"
            ) from error
        digest = content_hash(item)
        waiting = deferred.get(event.identity)
        if waiting is not None:
            result.conflicts += 1
            if waiting["created"] > event.at:
                plan.forward_wins.append((event, waiting))
                continue
        plan.puts.append((event, item, digest))
    if deferred:
        ledger.clear_deferred([e.id for e in latest.values() if e.identity in deferred])
    for event, waiting in plan.forward_wins:
        ledger.resolve_deferred(event.id, policy, "dynamodb", waiting, event.document, event.at)
        if waiting["document"] is None:
            notes = ledger.intend(TO_MONGODB, [(event.id, TOMBSTONE)], event.at)
            collection.delete_one({"_id": event.id})
            ledger.confirm(TO_MONGODB, notes)
        else:
            collection.replace_one({"_id": event.id}, waiting["document"], upsert=True)
    for event, _, _ in plan.puts:
        if event.identity in deferred:
            ledger.resolve_deferred(event.id, policy, "mongodb", deferred[event.identity], event.document, event.at)
    if plan.undo:
        notes = ledger.intend(TO_MONGODB, [(e.id, TOMBSTONE) for e in plan.undo], result.newest_at)
        collection.delete_many({"_id": {"$in": [e.id for e in plan.undo]}})
        ledger.confirm(TO_MONGODB, notes)
    # A write that would not change DynamoDB is not made: DynamoDB would write no stream record for
    # it, so its echo would never come back, and there is nothing to sync anyway.
    holding = _current_hashes(dynamodb, source_table, key_attrs, [e.id for e, _, _ in plan.puts] + [e.id for e in plan.deletes])
    unchanged = len(plan.puts) + len(plan.deletes)
    plan.puts = [(e, item, d) for e, item, d in plan.puts if holding.get(e.identity) != d]
    plan.deletes = [e for e in plan.deletes if e.identity in holding]
    result.skipped += unchanged - len(plan.puts) - len(plan.deletes)
    writes = [(e.id, d) for e, _, d in plan.puts] + [(e.id, TOMBSTONE) for e in plan.deletes]
    missed: list[Note] = []
    if writes:
        notes = ledger.intend(TO_DYNAMODB, writes, result.newest_at)
        _batch_write(dynamodb, source_table, [{"PutRequest": {"Item": item}} for _, item, _ in plan.puts])
        for e, note in zip(plan.deletes, notes[len(plan.puts):]):
            # DynamoDB may have deleted the item itself since it was read: that delete writes no
            # stream record, so its echo would never come back.
            key = dynamodb_key(e.id, key_attrs)
            if not dynamodb.delete_item(TableName=source_table, Key=key, ReturnValues="ALL_OLD").get("Attributes"):
                missed.append(note)
        ledger.withdraw(TO_DYNAMODB, missed)
        ledger.confirm(TO_DYNAMODB, [n for n in notes if n not in missed])
    if plan.deletes and applied_seq is not None:
        # Every stream record forward sync has applied is older than these deletes: a forward replay
        # (after a crash) must not bring the keys back.
        tombstones.bulk_write(
            [UpdateOne({"_id": tombstone_id(ledger.table, e.id)},
                       {"$max": {"seq": applied_seq}, "$set": {"at": e.at, "src": "mongodb"}}, upsert=True)
             for e in plan.deletes],
            ordered=False,
        )
    result.written = len(plan.puts)
    result.deleted = len(plan.deletes) - len(missed)
    ledger.consume(TO_MONGODB, consumed)
    return result

