"""Forward sync: DynamoDB stream records applied to MongoDB (DESIGN §2 and §6).

Both engines, the Lambda handler and the relay, hand ``apply_records`` the records of one batch in
stream order. The rules:

- INSERT and MODIFY replace the document with the converted NewImage; REMOVE deletes it. Only a
  key's final state in the batch is written.
- A record is applied only when its sequence number is newer than the key's, kept per key in the
  metadata database (dynamo2mongo.sync.keystate), where an application rewriting the whole document
  cannot erase it. Duplicate delivery, a retried batch and a replay from TRIM_HORIZON change
  nothing.
- Backward sync's own writes coming back are recognised by their ledger token (dynamo2mongo.sync.echo):
  DynamoDB Streams carry no writer's id, so the token stands for one write, made once, whose record
  is the key's first record of that content after the write was noted; a content written twice
  has two tokens and two echoes. Content equality alone is never taken for an echo.
- Every written document carries the forward mark ``_ddb.sync = {src, h, seq, at}``: ``seq`` is
  the write's token, which backward sync looks for in the change event of exactly that write.
- TTL expiries (the stream names DynamoDB itself as the writer) are applied as deletes, marked in
  the key's state, and are neither conflicts nor writes by an application.
- A record that cannot be converted, or whose write MongoDB refuses, is quarantined
  (dynamo2mongo.sync.quarantine); every other key goes on.

Stream records become changes in dynamo2mongo.sync.records; what the policies share is in
dynamo2mongo.sync.policy.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from pymongo import DeleteOne, ReplaceOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from dynamo2mongo.mapping import RESERVED, item_to_document
from dynamo2mongo.mongo_errors import DUPLICATE_KEY, other_unique_index
from dynamo2mongo.sync.echo import (
    OVERRULED, TO_DYNAMODB, TO_MONGODB, TOMBSTONE, EchoLedger, LedgerEntry, Note, identity,
)
from dynamo2mongo.sync.keystate import KeyState, KeyStates
from dynamo2mongo.sync.policy import CONFLICT_TOKEN, later, reassert, reassert_current
from dynamo2mongo.sync.quarantine import Quarantine
from dynamo2mongo.sync.records import Change, ForwardApplyError, document_hash, mark_of, to_change
from dynamo2mongo.sync.typememory import TableTypes
from dynamo2mongo.tally import Tally

log = logging.getLogger(__name__)

DIRECTION = "forward"


@dataclass
class ApplyResult(Tally):
    COUNTS = ("records", "written", "deleted", "skipped", "collapsed", "echoes", "conflicts", "unconvertible")
    newest_created: dt.datetime | None = None
    # The newest change made in DynamoDB by someone other than backward sync (not an echo).
    newest_independent: dt.datetime | None = None
    last_seq: str | None = None
    failed: list[tuple[Change, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        # Records that could not be converted are quarantined like those MongoDB refused.
        counts = super().counts()
        counts["quarantined"] = len(self.failed) + counts.pop("unconvertible")
        return counts


def _not_newer(seq: str) -> dict[str, Any]:
    # Matches a document without a forward mark too: an imported one, or one an application wrote.
    return {f"{RESERVED}.sync.seq": {"$not": {"$gte": seq}}}


def agreed_version(document: dict[str, Any] | None, state: KeyState) -> str | None:
    """The hash of the version both stores last agreed on; None when unknown (an application
    document the sync never wrote nor shipped).

    A forward write that the relay made but stopped before recording (``next``) is the agreed
    version once the document carries its mark. (Backward sync records its versions without a
    sequence number, so an older mark does not outrank the key's state.)
    """
    mark_seq = mark_of(document).get("seq") or ""
    if state.next_seq > state.seq and mark_seq >= state.next_seq:
        return state.next_h
    if state.h is not None:
        return state.h
    return TOMBSTONE if document is None else mark_of(document).get("h")


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
    types: TableTypes | None = None


@dataclass
class _Batch:
    """What one batch's decisions write, in the order ``apply_changes`` makes the writes."""

    writes: list[tuple[Change, bool]] = field(default_factory=list)  # (change, resolves a conflict)
    winners: list[tuple[Change, dict[str, list[str]]]] = field(default_factory=list)
    consumed: list[tuple[Note, str]] = field(default_factory=list)
    overruled: list[Note] = field(default_factory=list)
    states: list[tuple[Any, str, dict[str, Any]]] = field(default_factory=list)
    contested: list[tuple[Change, dict[str, Any] | None]] = field(default_factory=list)
    # Documents of DynamoDB's own changes (not echoes of backward sync's): what the table's types are.
    learnt: list[dict[str, Any]] = field(default_factory=list)


def _decide(group: list[Change], document: dict[str, Any] | None, state: KeyState, entry: LedgerEntry,
            sync: SyncContext | None, result: ApplyResult, batch: _Batch) -> None:
    """One key's records of the batch, in stream order, decided against what both stores hold.

    ``now`` is the content MongoDB holds (as the batch's writes will leave it), ``agreed`` the
    version both stores last agreed on: where they differ, MongoDB holds an application change that
    has not reached DynamoDB. An echo (a record of backward sync's own write, by its ledger token)
    changes nothing in MongoDB, which held that version first, except where forward sync had written
    a DynamoDB change over it before the write landed: both sides wrote, and the policy decides (an
    overruled echo was decided already: its winner is written again).
    """
    mark_seq = mark_of(document).get("seq") or ""
    applied = max(state.seq, mark_seq)
    agreed = agreed_version(document, state)
    # Hashed with the document's own hints (backward sync writes the ones it gave into them) and the
    # key's remembered ones, not the table's memory: what it learns later must not make an agreed
    # version look changed.
    now = document_hash(document, state.t)
    target: tuple[Change, bool] | None = None
    fields: dict[str, Any] = {}
    if state.next_seq > state.seq and (mark_seq >= state.next_seq or now == state.next_h):
        # The relay stopped between its write and the key's state: the write landed.
        applied, agreed = max(applied, state.next_seq), state.next_h
        fields = {"h": state.next_h}
    for change in group:
        if change.seq <= applied:
            result.skipped += 1
            continue
        applied = change.seq
        if sync is not None and (met := entry.meet(change)) is not None:
            kind, note = met
            if note is not None:
                batch.consumed.append((note, change.seq))
            result.echoes += 1
            if kind == OVERRULED and now == agreed and change.hash != now:
                # The overruled write landed after the resolution (it was noted, not yet made, when
                # DynamoDB's change won): DynamoDB may hold it now, so the winner is written again.
                batch.contested.append((change, target[0].document if target is not None else document))
                continue
            if kind == OVERRULED or entry.pending:
                # Overruled, or backward sync wrote later versions whose echoes are still to come:
                # MongoDB already holds something newer than this record.
                continue
            if now == agreed and change.hash != now:
                # Backward sync's write reached DynamoDB after forward sync had written a DynamoDB
                # change of the key over that MongoDB version: both sides wrote inside the window.
                result.conflicts += 1
                current = target[0].document if target is not None else document
                if _race_won_by_mongodb(sync, entry, state):
                    target, now = (change, False), change.hash
                    fields = {"h": change.hash, "t": change.hints, "ttl": False}
                    agreed = change.hash
                else:
                    batch.contested.append((change, current))
                sync.ledger.report_conflict(
                    change.id, sync.policy, "mongodb" if target is not None and target[0] is change else "dynamodb",
                    current, change.document, change.created,
                    "backward sync wrote a MongoDB change to DynamoDB after forward sync had written a DynamoDB "
                    "change of the key over it", dynamodb_at=state.at, mongodb_at=entry.changed_at)
                continue
            fields["h"] = agreed = change.hash
            continue
        if not change.ttl and (result.newest_independent is None or change.created > result.newest_independent):
            result.newest_independent = change.created
        if change.document is not None:
            # DynamoDB's own change says what the table's types are, whether or not it wins.
            batch.learnt.append(change.document)
        if change.ttl:
            if now != agreed:
                # The application changed the expired item in MongoDB: its change re-creates it.
                result.skipped += 1
                continue
        elif sync is not None and (entry.pending or now != agreed):
            result.conflicts += 1
            if not _resolve(change, document, entry, sync, batch):
                continue
            target = (change, True)
            now = agreed = change.hash
            fields = {"h": change.hash, "t": change.hints, "ttl": False}
            continue
        target = (change, False)
        now = agreed = change.hash
        fields = {"h": change.hash, "t": change.hints, "ttl": change.ttl}
    if log.isEnabledFor(logging.DEBUG):
        log.debug("key %s: records %s; applied %s, agreed %s, holds %s, pending %s; writes %s, state %s", group[0].id,
                  [(c.seq.lstrip("0"), c.event, c.hash) for c in group], applied.lstrip("0"), agreed, now,
                  entry.pending, target[0].seq.lstrip("0") if target else None, fields)
    if target is not None:
        batch.writes.append(target)
        for position, (winner, losers) in enumerate(batch.winners):
            if winner.identity == target[0].identity and winner is not target[0]:
                # A later record of the key superseded the winner: that one is what DynamoDB must hold.
                batch.winners[position] = (target[0], losers)
    batch.states.append((group[0].id, applied, fields))


def _resolve(change: Change, document: dict[str, Any] | None, entry: LedgerEntry, sync: SyncContext,
             batch: _Batch) -> bool:
    """Apply the conflict policy; True when DynamoDB's change is to be applied to MongoDB.

    Pending ledger tokens are MongoDB versions backward sync wrote to DynamoDB after this change:
    a DynamoDB win is then written back to DynamoDB as well, and their echoes are overruled.
    """
    mongo_version_in_dynamodb = bool(entry.pending)
    mongo_at = entry.changed_at
    if sync.policy == "mongodb_wins":
        apply = False
    elif sync.policy == "latest_wins":
        if not mongo_version_in_dynamodb:
            # The MongoDB change has not reached backward sync, so its time is unknown here: backward
            # sync compares the two times when it meets that change.
            sync.ledger.defer(change.id, change.created, change.seq, change.document)
            return False
        apply = mongo_at is None or later(change.created, mongo_at) == "dynamodb"
    else:
        apply = True
    if apply and mongo_version_in_dynamodb:
        batch.winners.append((change, dict(entry.pending)))
        for h, tokens in entry.pending.items():
            batch.overruled.extend((change.id, h, t) for t in tokens)
            # Their echoes may follow in this very batch.
            entry.overruled.setdefault(h, []).extend(tokens)
        entry.pending.clear()
    sync.ledger.report_conflict(
        change.id, sync.policy, "dynamodb" if apply else "mongodb", change.document, document, change.created,
        f"stream record {change.seq.lstrip('0')} ({change.event}) met an unsynced MongoDB change",
        dynamodb_at=change.created, mongodb_at=mongo_at,
    )
    return apply


def _race_won_by_mongodb(sync: SyncContext, entry: LedgerEntry, state: KeyState) -> bool:
    if sync.policy == "mongodb_wins":
        return True
    if sync.policy == "latest_wins" and entry.changed_at is not None and state.at is not None:
        return later(state.at, entry.changed_at) == "mongodb"
    return False


def apply_changes(
    changes: list[Change],
    collection: Collection,
    keys: KeyStates,
    table: str,
    sync: SyncContext | None = None,
    quarantine: Quarantine | None = None,
) -> ApplyResult:
    """Write one batch of changes (stream order) to ``collection``; safe to repeat.

    A record at or below the key's applied sequence number (``dynamo2mongo.sync.keystate``) is a replay.
    Each write carries the sequence-number condition in its filter, so a concurrent writer of the
    same key cannot be overwritten by an older record. Only the key's final state in the batch is
    written.

    With ``sync`` (backward sync may run), each write to MongoDB is noted in the echo ledger first,
    by its token (the record's sequence number, also in the document's mark), so backward sync
    recognises exactly that write's change event. A record meeting a MongoDB application change that
    DynamoDB has not seen yet is a conflict: resolved by the policy and reported.

    A change MongoDB refuses (another unique index holds its key fields for a document whose
    ``_id`` does not follow the key convention, a document over 16 MB) is quarantined and every
    other key goes on; a later change of the key that syncs resolves the entry.

    The writes are made in an order that a crash between any two of them leaves harmless: ledger
    intents (the key states' and the ledger's), DynamoDB write-backs, the MongoDB writes,
    confirmations, met echoes, key states.
    """
    result = ApplyResult(records=len(changes))
    if not changes:
        return result
    result.last_seq = max(c.seq for c in changes)
    result.newest_created = max(c.created for c in changes)
    groups: dict[bytes, list[Change]] = {}
    for change in changes:
        groups.setdefault(change.identity, []).append(change)
    ids = [group[0].id for group in groups.values()]
    current = {identity(d["_id"]): d for d in collection.find({"_id": {"$in": ids}})}
    states = keys.read(ids)
    entries = sync.ledger.lookup(TO_DYNAMODB, ids) if sync is not None else {}
    batch = _Batch()
    result.collapsed = len(changes) - len(groups)
    for key, group in groups.items():
        _decide(group, current.get(key), states.get(key, KeyState()), entries.get(key) or LedgerEntry(),
                sync, result, batch)
    notes: list[Note] = []
    operations: list[Any] = []
    planned: list[Change] = []
    for change, resolved in batch.writes:
        condition = {"_id": change.id, **_not_newer(change.seq)}
        if change.document is None:
            if current.get(change.identity) is not None:
                operations.append(DeleteOne(condition))
                planned.append(change)
                notes.append((change.id, TOMBSTONE, (CONFLICT_TOKEN if resolved else "") + change.seq))
        else:
            operations.append(ReplaceOne(condition, change.document, upsert=True))
            planned.append(change)
            notes.append((change.id, change.seq, (CONFLICT_TOKEN if resolved else "") + change.seq))
    keys.intend_forward([(c.id, c.seq, c.hash) for c, _ in batch.writes])
    if sync is not None and sync.types is not None:
        sync.types.learn(batch.learnt)
    if sync is not None and notes:
        sync.ledger.intend_tokens(TO_MONGODB, notes, [c.created for c in planned])
    if batch.winners:
        reassert(sync, batch.winners)
    if batch.contested:
        reassert_current(sync, batch.contested)
    if batch.overruled:
        sync.ledger.overrule(TO_DYNAMODB, batch.overruled)
    if operations:
        _write(collection, operations, planned, result)
    if sync is not None and notes:
        sync.ledger.confirm(TO_MONGODB, notes)
    if batch.consumed:
        sync.ledger.consume(TO_DYNAMODB, [note for note, _ in batch.consumed], [seq for _, seq in batch.consumed])
    failed = {c.identity for c, _ in result.failed}
    keys.record_forward([s for s in batch.states if identity(s[0]) not in failed], result.newest_created)
    if quarantine is not None:
        for change, reason in result.failed:
            quarantine.put(DIRECTION, change.id, reason, change.record or change.document, position=change.seq)
        synced = [c.id for c, _ in batch.writes if c.identity not in failed]
        if synced:
            quarantine.resolve(DIRECTION, synced)
    return result

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
                                          f"document, whose _id does not follow the key convention (derive it "
                                          f"with dynamo2mongo.mapping.keys.document_id) or that duplicates a value; fix "
                                          f"that document, then run `dynamo2mongo quarantine retry`"))
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
    keys: KeyStates,
    table: str,
    key_attrs: tuple[str, ...],
    number_mapping: str = "lossless",
    binary_as_base64: bool = False,
    sync: SyncContext | None = None,
    quarantine: Quarantine | None = None,
) -> ApplyResult:
    """Convert and apply one batch of stream records (in stream order); a record that cannot be
    converted is quarantined (or, without a quarantine, fails the batch) and the others applied."""
    changes: list[Change] = []
    unconvertible = 0
    for record in records:
        try:
            changes.append(to_change(record, key_attrs, number_mapping, binary_as_base64))
        except ForwardApplyError as error:
            if quarantine is None:
                raise
            unconvertible += 1
            data = record.get("dynamodb") or {}
            try:
                key = item_to_document(data["Keys"], key_attrs)["_id"]
            except (KeyError, TypeError, ValueError):
                key = repr(data.get("Keys"))
            log.error("table %s: %s; quarantined", table, error)
            quarantine.put(DIRECTION, key, str(error), record, position=data.get("SequenceNumber"))
    result = apply_changes(changes, collection, keys, table, sync, quarantine)
    result.records += unconvertible
    result.unconvertible = unconvertible
    return result
