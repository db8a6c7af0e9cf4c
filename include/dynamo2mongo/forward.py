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
from dataclasses import dataclass, field
from typing import Any

import bson
from pymongo import DeleteOne, ReplaceOne, UpdateOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from dynamo2mongo.canonical import content_hash
from dynamo2mongo.echo import TO_DYNAMODB, TO_MONGODB, TOMBSTONE, EchoLedger, Note, identity
from dynamo2mongo.export import MalformedRecord
from dynamo2mongo.export.ddbjson import item_from_json
from dynamo2mongo.mongo_errors import DUPLICATE_KEY, other_unique_index
from dynamo2mongo.types import RESERVED, Unrepresentable, document_to_item, item_to_document

log = logging.getLogger(__name__)

SOURCE = "dynamodb"
SEQ_WIDTH = 40
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
    hash: str = TOMBSTONE
    keys: dict[str, Any] | None = None

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
    echoes: int = 0
    conflicts: int = 0
    newest_created: dt.datetime | None = None
    # The newest change made in DynamoDB by someone other than backward sync (not an echo).
    newest_independent: dt.datetime | None = None
    last_seq: str | None = None
    failed: list[tuple[Change, str]] = field(default_factory=list)

    def add(self, other: "ApplyResult") -> None:
        self.records += other.records
        self.written += other.written
        self.deleted += other.deleted
        self.skipped += other.skipped
        self.collapsed += other.collapsed
        self.echoes += other.echoes
        self.conflicts += other.conflicts
        if other.newest_created and (self.newest_created is None or other.newest_created > self.newest_created):
            self.newest_created = other.newest_created
        if other.newest_independent and (
            self.newest_independent is None or other.newest_independent > self.newest_independent
        ):
            self.newest_independent = other.newest_independent
        self.last_seq = other.last_seq or self.last_seq
        self.failed.extend(other.failed)

    def counts(self) -> dict[str, int]:
        return {
            "records": self.records,
            "written": self.written,
            "deleted": self.deleted,
            "skipped": self.skipped,
            "collapsed": self.collapsed,
            "echoes": self.echoes,
            "conflicts": self.conflicts,
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


def baseline_mark(item: dict[str, Any]) -> dict[str, Any]:
    """The mark of an exported item: its content as DynamoDB held it, older than any stream record.

    With it, an imported document that the application later changes is told apart from one that
    still mirrors DynamoDB, which conflict detection and echo suppression rely on.
    """
    return {"src": SOURCE, "h": content_hash(item), "seq": ""}


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
            return Change(document_id, seq, created, event, None, TOMBSTONE, keys)
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
    mark = forward_mark(item, seq, created)
    document.setdefault(RESERVED, {})["sync"] = mark
    return Change(document["_id"], seq, created, event, document, mark["h"], keys)


def tombstone_id(table: str, document_id: Any) -> dict[str, Any]:
    return {"t": table, "k": document_id}


def last_per_key(changes: list[Change], echoes: set[int] = frozenset()) -> tuple[list[tuple[Change, bool, Change | None]], int]:
    """The last change of each key (in the order keys were last changed), and how many were dropped.

    Each entry is ``(change, is_echo, overtaken)``: when the last change is an echo (position in
    ``echoes``), ``overtaken`` is the last independent change of the key it overtook in this batch.
    """
    latest: dict[bytes, tuple[Change, bool, Change | None]] = {}
    dropped = 0
    for position, change in enumerate(changes):
        previous = latest.pop(change.identity, None)
        independent = None
        if previous is not None:
            dropped += 1
            independent = previous[2] if previous[1] else previous[0]
        is_echo = position in echoes
        latest[change.identity] = (change, is_echo, independent if is_echo else None)
    return list(latest.values()), dropped


def _not_newer(seq: str) -> dict[str, Any]:
    # Matches a document without a forward mark too: an imported one, or one an application wrote.
    return {f"{RESERVED}.sync.seq": {"$not": {"$gte": seq}}}


def mark_of(document: dict[str, Any] | None) -> dict[str, Any]:
    return ((document or {}).get(RESERVED) or {}).get("sync") or {}


def in_sync(document: dict[str, Any]) -> bool:
    """Whether the document still holds what the last sync wrote (its mark's hash is its content's).

    A document changed by the application since then does not: that change has not reached
    DynamoDB yet, or is on its way back as an echo.
    """
    mark = mark_of(document)
    if mark.get("src") != SOURCE or not mark.get("h"):
        return False
    try:
        return content_hash(document_to_item(document)) == mark["h"]
    except Unrepresentable:
        return False


@dataclass
class SyncContext:
    """What forward sync needs once backward sync may run too (DESIGN §6).

    ``dynamodb`` (a client) and ``source_table`` let a ``dynamodb_wins`` resolution write the winner
    back to DynamoDB when the losing MongoDB version already got there.
    """

    ledger: EchoLedger
    policy: str = "dynamodb_wins"
    dynamodb: Any = None
    source_table: str | None = None


def _find_echoes(
    changes: list[Change], sync: SyncContext, result: ApplyResult
) -> tuple[set[int], list[tuple[Note, str]], dict]:
    """Positions of the changes that are backward sync's own writes coming back, and the ledger
    entries they consume with the sequence numbers that met them (each write once; a replay brings
    back records already met)."""
    ids = [c.id for c in changes]
    pending = sync.ledger.pending(TO_DYNAMODB, ids)
    met = sync.ledger.met(TO_DYNAMODB, ids)
    echoes: set[int] = set()
    consumed: list[tuple[Note, str]] = []
    for position, change in enumerate(changes):
        writes = pending.get(change.identity) or {}
        if met.get(change.identity, {}).get(change.hash, "") >= change.seq:
            # Met before the relay was restarted: a later write of the same content, still pending,
            # keeps its entry for its own echo.
            echoes.add(position)
        elif writes.get(change.hash):
            consumed.append(((change.id, change.hash, writes[change.hash].pop(0)), change.seq))
            if not writes[change.hash]:
                del writes[change.hash]
            echoes.add(position)
    result.echoes = len(echoes)
    return echoes, consumed, pending


def _reassert(sync: SyncContext, winners: list[tuple[Change, set[str]]]) -> None:
    """Write DynamoDB's winning version back over the MongoDB version backward sync put there.

    Only while DynamoDB still holds that MongoDB version (``losers``): had DynamoDB changed again
    since, its newer change is in the stream and wins on its own.
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


def _pending_application_change(document: dict[str, Any] | None, change: Change) -> bool:
    """MongoDB holds an application change (not yet back from DynamoDB) that differs from ``change``."""
    if document is None or in_sync(document):
        return False
    try:
        return content_hash(document_to_item(document)) != change.hash
    except Unrepresentable:
        return True


def apply_changes(
    changes: list[Change],
    collection: Collection,
    tombstones: Collection,
    table: str,
    guarded: bool = True,
    sync: SyncContext | None = None,
) -> ApplyResult:
    """Write one batch of changes (stream order) to ``collection``; safe to repeat.

    Sequence numbers already held are read first, so stale records cost no write. With ``guarded``
    (see dynamo2mongo.mongo_caps) each write also carries the sequence-number condition in its filter,
    so a concurrent writer of the same key cannot be overwritten by an older record.

    With ``sync`` (backward sync may run), the stream stays the order of truth: every record is
    applied, except where MongoDB holds an application change that DynamoDB has not seen yet. A
    record that is backward sync's own write coming back (an echo) meets no conflict: it is that
    change confirmed, and applying it only renews the document's mark. Any other record meeting a
    pending application change (or a delete backward sync has just propagated) was written on both
    sides inside the replication window: a conflict, resolved by the policy and reported.
    """
    result = ApplyResult(records=len(changes))
    if not changes:
        return result
    result.last_seq = max(c.seq for c in changes)
    result.newest_created = max(c.created for c in changes)
    echo_positions: set[int] = set()
    consumed: list[tuple[Note, str]] = []
    pending: dict[bytes, dict[str, list[str]]] = {}
    if sync is not None:
        echo_positions, consumed, pending = _find_echoes(changes, sync, result)
    latest, result.collapsed = last_per_key(changes, echo_positions)
    independent = [c.created for p, c in enumerate(changes) if p not in echo_positions]
    result.newest_independent = max(independent) if independent else None
    keys = [c.id for c, _, _ in latest]
    current = {identity(d["_id"]): d for d in collection.find({"_id": {"$in": keys}})}
    buried = {}
    deleted_by_stream: set[bytes] = set()
    missing = [tombstone_id(table, c.id) for c, _, _ in latest if c.identity not in current]
    if missing:
        for stone in tombstones.find({"_id": {"$in": missing}}, {"seq": 1, "src": 1}):
            buried[identity(stone["_id"]["k"])] = stone["seq"]
            if stone.get("src", SOURCE) == SOURCE:
                deleted_by_stream.add(identity(stone["_id"]["k"]))
    operations: list[Any] = []
    planned: list[Change] = []
    deletes: list[tuple[Change, bool]] = []
    winners: list[tuple[Change, set[str]]] = []
    for change, is_echo, overtaken in latest:
        document = current.get(change.identity)
        known = (mark_of(document).get("seq") or "") if document is not None else buried.get(change.identity, "")
        if known >= change.seq:
            result.skipped += 1
            continue
        if sync is not None:
            losers = set(pending.get(change.identity) or ())
            conflict = False
            if is_echo and overtaken is not None:
                # DynamoDB changed the key independently just before backward sync's write landed.
                losers.add(change.hash)
                change, conflict = overtaken, True
            elif is_echo:
                if _pending_application_change(document, change) or (
                    document is None and change.document is not None and change.identity not in deleted_by_stream
                ):
                    # The application changed (or deleted) the document again since: that newer change
                    # follows through backward sync.
                    result.skipped += 1
                    continue
            else:
                conflict = _pending_application_change(document, change) or (
                    document is None and TOMBSTONE in (pending.get(change.identity) or {})
                )
            if conflict:
                result.conflicts += 1
                if not _resolve(change, document, losers, sync, winners):
                    result.skipped += 1
                    continue
        condition = {"_id": change.id, **(_not_newer(change.seq) if guarded else {})}
        if change.document is None:
            operations.append(DeleteOne(condition))
            deletes.append((change, document is not None))
        else:
            operations.append(ReplaceOne(condition, change.document, upsert=True))
        planned.append(change)
    # Only a delete that removes a document makes a change event for backward sync to skip.
    present = [c for c, there in deletes if there] if sync is not None else []
    noted = sync.ledger.intend(TO_MONGODB, [(c.id, TOMBSTONE) for c in present], present[0].created) if present else []
    if deletes:
        # The tombstone goes first: should the delete then fail, the batch is retried and the
        # tombstone, holding the same sequence number, is rewritten as it was.
        tombstones.bulk_write(
            [
                UpdateOne(
                    {"_id": tombstone_id(table, c.id)},
                    {"$max": {"seq": c.seq}, "$set": {"at": c.created, "src": SOURCE}},
                    upsert=True,
                )
                for c, _ in deletes
            ],
            ordered=False,
        )
    if winners:
        _reassert(sync, winners)
    if operations:
        _write(collection, operations, planned, result)
    if noted:
        sync.ledger.confirm(TO_MONGODB, noted)
    if consumed:
        sync.ledger.consume(TO_DYNAMODB, [note for note, _ in consumed], [seq for _, seq in consumed])
    return result


def _resolve(change: Change, document: dict[str, Any] | None, losers: set[str], sync: SyncContext,
             winners: list[tuple[Change, set[str]]]) -> bool:
    """Apply the conflict policy; True when DynamoDB's change is to be applied to MongoDB.

    ``losers`` are the hashes of MongoDB versions backward sync wrote to DynamoDB after this change
    (their echoes have not come back): a DynamoDB win is then written back to DynamoDB as well.
    """
    mongo_version_in_dynamodb = bool(losers)
    if sync.policy == "mongodb_wins":
        apply = False
    elif sync.policy == "latest_wins":
        if not mongo_version_in_dynamodb:
            # The MongoDB change has not reached backward sync, so its time is unknown here: backward
            # sync compares the two times when it meets that change.
            sync.ledger.defer(change.id, change.created, change.seq, change.document)
            return False
        mongo_at = sync.ledger.changed_at(TO_DYNAMODB, change.id)
        apply = mongo_at is None or change.created > mongo_at
    else:
        apply = True
    if apply and mongo_version_in_dynamodb:
        winners.append((change, losers))
    sync.ledger.report_conflict(
        change.id,
        sync.policy,
        "dynamodb" if apply else "mongodb",
        change.document,
        document,
        change.created,
        f"stream record {change.seq.lstrip('0')} ({change.event}) met an unsynced MongoDB change",
    )
    return apply


def _write(collection: Collection, operations: list[Any], planned: list[Change], result: ApplyResult) -> None:
    try:
        details = collection.bulk_write(operations, ordered=False).bulk_api_result
    except BulkWriteError as error:
        details = error.details
    errors = {e["index"]: e for e in details.get("writeErrors", [])}
    for index, change in enumerate(planned):
        error = errors.get(index)
        if error is None:
            continue
        if error.get("code") == DUPLICATE_KEY and (other := other_unique_index(error)) is not None:
            # Another unique index turned the document away: skipping it would drop the change.
            result.failed.append((change, f"unique index {other[0]} already holds {other[1]} for another "
                                          f"document; remove the duplicate value or the index"))
        elif error.get("code") == DUPLICATE_KEY:
            # The guarded filter found a newer document and the upsert collided with it.
            result.skipped += 1
        else:
            result.failed.append((change, f"{error.get('code')}: {error.get('errmsg')}"))
    upserted_or_matched = details.get("nUpserted", 0) + details.get("nMatched", 0)
    result.written = upserted_or_matched
    result.deleted = details.get("nRemoved", 0)
    # A delete that matched nothing (the key never reached MongoDB, or a newer write got there first)
    # changed nothing either.
    result.skipped += max(0, len(planned) - len(errors) - upserted_or_matched - result.deleted)


def apply_records(
    records: list[dict[str, Any]],
    collection: Collection,
    tombstones: Collection,
    table: str,
    key_attrs: tuple[str, ...],
    number_mapping: str = "lossless",
    binary_as_base64: bool = False,
    guarded: bool = True,
    sync: SyncContext | None = None,
) -> ApplyResult:
    """Convert and apply one batch of stream records (in stream order)."""
    changes = [to_change(r, key_attrs, number_mapping, binary_as_base64) for r in records]
    return apply_changes(changes, collection, tombstones, table, guarded, sync)


def ensure_tombstone_expiry(tombstones: Collection, retention_hours: int = 48) -> None:
    """Tombstones only need to outlive the stream's 24 h retention: MongoDB drops them afterwards."""
    tombstones.create_index("at", expireAfterSeconds=retention_hours * 3600, name="expire_after_retention")
