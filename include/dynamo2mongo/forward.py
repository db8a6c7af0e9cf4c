"""Forward sync: DynamoDB stream records applied to MongoDB (DESIGN §2 and §6).

Both engines, the Lambda handler and the relay, hand ``apply_records`` the records of one batch in
stream order. The rules:

- INSERT and MODIFY replace the document with the converted NewImage; REMOVE deletes it.
- Within a batch only the last record per key is written: records of one key arrive in order, so the
  last one is the key's newest state, and skipping the earlier ones changes nothing at the end.
- A record is applied only when its sequence number is newer than the one the document carries
  (``_ddb.sync.seq``) or, for a deleted key, than the key's tombstone. Duplicate delivery, a retried
  batch and a replay from TRIM_HORIZON therefore change nothing.
- Every written document carries the forward mark ``_ddb.sync = {src, h, seq, at}``: ``h`` is the
  content hash (dynamo2mongo.canonical) that backward sync compares to tell an echo from an
  application change.

Sequence numbers are decimal strings of up to 40 digits, ordered per item key across a stream's
shards (a child shard's records follow its parent's); they are stored zero-padded to 40 characters
so that MongoDB's string order is their numeric order.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import bson
from pymongo import DeleteOne, ReplaceOne, UpdateOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from dynamo2mongo.canonical import content_hash
from dynamo2mongo.export import MalformedRecord
from dynamo2mongo.export.ddbjson import item_from_json
from dynamo2mongo.types import RESERVED, Unrepresentable, item_to_document

log = logging.getLogger(__name__)

SOURCE = "dynamodb"
SEQ_WIDTH = 40
DUPLICATE_KEY = 11000
EVENTS = ("INSERT", "MODIFY", "REMOVE")


class ForwardApplyError(RuntimeError):
    """A stream record cannot be applied; the message names the table, the key and the sequence number."""


@dataclass(frozen=True)
class Change:
    """One stream record, converted: the key's ``_id`` and the document to write (None: delete)."""

    id: Any
    seq: str
    created: dt.datetime
    event: str
    document: dict[str, Any] | None

    @property
    def identity(self) -> bytes:
        """Equal for equal ``_id`` values (a dict ``_id`` is not hashable)."""
        return bson.encode({"k": self.id})


@dataclass
class ApplyResult:
    records: int = 0
    written: int = 0
    deleted: int = 0
    skipped: int = 0
    collapsed: int = 0
    newest_created: dt.datetime | None = None
    last_seq: str | None = None
    failed: list[tuple[Change, str]] = field(default_factory=list)

    def add(self, other: "ApplyResult") -> None:
        self.records += other.records
        self.written += other.written
        self.deleted += other.deleted
        self.skipped += other.skipped
        self.collapsed += other.collapsed
        if other.newest_created and (self.newest_created is None or other.newest_created > self.newest_created):
            self.newest_created = other.newest_created
        self.last_seq = other.last_seq or self.last_seq
        self.failed.extend(other.failed)

    def counts(self) -> dict[str, int]:
        return {
            "records": self.records,
            "written": self.written,
            "deleted": self.deleted,
            "skipped": self.skipped,
            "collapsed": self.collapsed,
            "failed": len(self.failed),
        }


def padded(sequence_number: str | int) -> str:
    text = str(sequence_number)
    if not text.isdigit() or len(text) > SEQ_WIDTH:
        raise ValueError(f"{text!r} is not a DynamoDB stream sequence number")
    return text.zfill(SEQ_WIDTH)


def _created(value: Any) -> dt.datetime:
    # boto3 gives a datetime; Lambda events carry epoch seconds.
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    return dt.datetime.now(dt.timezone.utc)


def forward_mark(item: dict[str, Any], seq: str, created: dt.datetime) -> dict[str, Any]:
    return {"src": SOURCE, "h": content_hash(item), "seq": seq, "at": created}


def to_change(
    record: dict[str, Any],
    key_attrs: tuple[str, ...],
    number_mapping: str = "lossless",
    binary_as_base64: bool = False,
) -> Change:
    """Convert one stream record (boto3 shape, or Lambda's JSON shape with ``binary_as_base64``)."""
    data = record.get("dynamodb") or {}
    event = record.get("eventName")
    try:
        seq = padded(data["SequenceNumber"])
        if event not in EVENTS:
            raise MalformedRecord(f"unknown eventName {event!r}")
        keys = item_from_json(data["Keys"], "Keys") if binary_as_base64 else data["Keys"]
        document_id = item_to_document(keys, key_attrs)["_id"]
        created = _created(data.get("ApproximateCreationDateTime"))
        if event == "REMOVE":
            return Change(document_id, seq, created, event, None)
        if "NewImage" not in data:
            raise MalformedRecord(
                "the record has no NewImage: the stream's view type must be NEW_AND_OLD_IMAGES (or NEW_IMAGE)"
            )
        item = item_from_json(data["NewImage"], "NewImage") if binary_as_base64 else data["NewImage"]
        document = item_to_document(item, key_attrs, number_mapping)
    except (KeyError, ValueError) as error:
        reason = getattr(error, "reason", None) or (f"missing field {error}" if isinstance(error, KeyError) else str(error))
        raise ForwardApplyError(
            f"stream record {record.get('eventID')!r} (sequence number {data.get('SequenceNumber')}, keys "
            f"{data.get('Keys')!r:.200}) cannot be converted: {reason}"
        ) from error
    meta = document.setdefault(RESERVED, {})
    meta["sync"] = forward_mark(item, seq, created)
    return Change(document["_id"], seq, created, event, document)


def collapse(changes: Iterable[Change]) -> tuple[list[Change], int]:
    """The last change per key, in the order keys were last changed; and how many were dropped."""
    latest: dict[bytes, Change] = {}
    total = 0
    for change in changes:
        total += 1
        identity = change.identity
        latest.pop(identity, None)
        latest[identity] = change
    return list(latest.values()), total - len(latest)


def _not_newer(seq: str) -> dict[str, Any]:
    # Matches a document without a forward mark too: an imported one, or one an application wrote.
    return {f"{RESERVED}.sync.seq": {"$not": {"$gte": seq}}}


def tombstone_id(table: str, document_id: Any) -> dict[str, Any]:
    return {"t": table, "k": document_id}


def _known_seqs(changes: list[Change], collection: Collection, tombstones: Collection, table: str) -> dict[bytes, str]:
    """The newest sequence number MongoDB already holds per key: the document's mark, else its tombstone."""
    known: dict[bytes, str] = {}
    ids = [c.id for c in changes]
    for document in collection.find({"_id": {"$in": ids}}, {f"{RESERVED}.sync.seq": 1}):
        seq = ((document.get(RESERVED) or {}).get("sync") or {}).get("seq")
        known[bson.encode({"k": document["_id"]})] = seq or ""
    missing = [tombstone_id(table, c.id) for c in changes if c.identity not in known]
    if missing:
        for stone in tombstones.find({"_id": {"$in": missing}}, {"seq": 1}):
            known[bson.encode({"k": stone["_id"]["k"]})] = stone["seq"]
    return known


def apply_changes(
    changes: list[Change],
    collection: Collection,
    tombstones: Collection,
    table: str,
    guarded: bool = True,
) -> ApplyResult:
    """Write one batch of changes (stream order) to ``collection``; safe to repeat.

    Sequence numbers already held are read first, so stale records cost no write. With ``guarded``
    (see dynamo2mongo.mongo_caps) each write also carries the sequence-number condition in its filter,
    so a concurrent writer of the same key cannot be overwritten by an older record.
    """
    result = ApplyResult(records=len(changes))
    if not changes:
        return result
    result.last_seq = max(c.seq for c in changes)
    result.newest_created = max(c.created for c in changes)
    latest, result.collapsed = collapse(changes)
    known = _known_seqs(latest, collection, tombstones, table)
    operations: list[Any] = []
    planned: list[Change] = []
    removes: list[Change] = []
    for change in latest:
        if known.get(change.identity, "") >= change.seq:
            result.skipped += 1
            continue
        condition = {"_id": change.id, **(_not_newer(change.seq) if guarded else {})}
        if change.document is None:
            operations.append(DeleteOne(condition))
            removes.append(change)
        else:
            operations.append(ReplaceOne(condition, change.document, upsert=True))
        planned.append(change)
    if removes:
        # The tombstone goes first: should the delete then fail, the batch is retried and the
        # tombstone, holding the same sequence number, is rewritten as it was.
        tombstones.bulk_write(
            [
                UpdateOne(
                    {"_id": tombstone_id(table, c.id)},
                    {"$max": {"seq": c.seq}, "$set": {"at": c.created}},
                    upsert=True,
                )
                for c in removes
            ],
            ordered=False,
        )
    if not operations:
        return result
    try:
        details = collection.bulk_write(operations, ordered=False).bulk_api_result
    except BulkWriteError as error:
        details = error.details
    errors = {e["index"]: e for e in details.get("writeErrors", [])}
    for index, change in enumerate(planned):
        error = errors.get(index)
        if error is None:
            continue
        if error.get("code") == DUPLICATE_KEY:
            # The guarded filter found a newer document and the upsert collided with it.
            result.skipped += 1
        else:
            result.failed.append((change, f"{error.get('code')}: {error.get('errmsg')}"))
    upserted_or_matched = details.get("nUpserted", 0) + details.get("nMatched", 0)
    result.written = upserted_or_matched
    result.deleted = details.get("nRemoved", 0)
    # A delete that matched nothing (the key never reached MongoDB, or a newer write got there first)
    # changed nothing either.
    result.skipped += len(planned) - len(errors) - upserted_or_matched - result.deleted
    return result


def apply_records(
    records: list[dict[str, Any]],
    collection: Collection,
    tombstones: Collection,
    table: str,
    key_attrs: tuple[str, ...],
    number_mapping: str = "lossless",
    binary_as_base64: bool = False,
    guarded: bool = True,
) -> ApplyResult:
    """Convert and apply one batch of stream records (in stream order)."""
    changes = [to_change(r, key_attrs, number_mapping, binary_as_base64) for r in records]
    return apply_changes(changes, collection, tombstones, table, guarded)


def ensure_tombstone_expiry(tombstones: Collection, retention_hours: int = 48) -> None:
    """Tombstones only need to outlive the stream's 24 h retention: MongoDB drops them afterwards."""
    tombstones.create_index("at", expireAfterSeconds=retention_hours * 3600, name="expire_after_retention")
