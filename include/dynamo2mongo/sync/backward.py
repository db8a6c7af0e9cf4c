"""Backward sync: MongoDB change events applied to DynamoDB (DESIGN §2 and §6).

Used by the change-stream relay. The rules:

- Echoes are recognised by write identity, never by content. Forward sync only inserts and
  replaces documents (and deletes them), noting each write in the echo ledger first under its
  token, which the written document's mark carries (``_ddb.sync.seq``, or ``w`` for backward
  sync's own writes to MongoDB). An insert or replace event whose document carries a pending token
  is that write: met once and skipped. Its id is kept, so the same event replayed after a crash is
  met again, while an application's later ``replace_one`` that copied the mark along is a change
  of its own. Update events are always the application's. A delete event meets a noted delete.
- Application changes: within a batch only a key's newest change is written; inserts, updates and
  replaces write the post-image, converted back per DESIGN §4 (type hints honoured, ``_id`` and
  ``_ddb`` never written; a document without ``_ddb`` gets the hints of the version both stores
  last agreed on, dynamo2mongo.sync.typememory). A change back to an earlier content is a change like
  any other.
- Post-images. With ``changeStreamPreAndPostImages`` (MongoDB 6+) each event's post-image is the
  document as that change left it. With ``updateLookup`` it is read later and may show a later
  state; that state has its own event further on, so writing it early loses nothing, and skipping
  a sync write's event never hides an application change, because inserts and replacements carry
  their own document on every server. What updateLookup cannot give is an application version that
  forward sync overwrote before it was read: that conflict is reported, but MongoDB's version
  cannot win it.
- An application change followed (in MongoDB) by a forward write of the key that did not know of
  it was made on both sides inside the replication window: a conflict, resolved by the policy and
  reported, unless forward sync already resolved and reported it.
- A document DynamoDB cannot hold (a value or name it cannot take, a missing or malformed key, an
  ``_id`` not following the key convention, an item it refuses) is quarantined with its key and
  reason; every other key goes on, and a later change of the key that syncs resolves the entry.
- Every write is noted in the ledger first (intended), made, then noted as written, so forward sync
  skips its echo exactly once. Writes are at least once: a batch replayed after a crash is written
  again, which changes nothing in DynamoDB (a write DynamoDB already holds is not made).
- A forward conflict that ``latest_wins`` could not decide (the MongoDB change's time was unknown)
  is decided here, where that time is known.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pymongo.collection import Collection

from dynamo2mongo.mapping import DEFAULT_BSON_MAPPING, RESERVED, BsonMapping, Unrepresentable
from dynamo2mongo.mapping.canonical import content_hash
from dynamo2mongo.sync.dynamodb_items import BackwardApplyError, batch_write, current_items, dynamodb_key, to_item
from dynamo2mongo.sync.echo import TO_DYNAMODB, TO_MONGODB, TOMBSTONE, EchoLedger, LedgerEntry, Note, identity
from dynamo2mongo.sync.events import Event
from dynamo2mongo.sync.keystate import KeyState, KeyStates
from dynamo2mongo.sync.policy import CONFLICT_TOKEN, later, write_mongodb
from dynamo2mongo.sync.quarantine import Quarantine
from dynamo2mongo.sync.records import mark_of, synced_document
from dynamo2mongo.sync.typememory import TableTypes
from dynamo2mongo.tally import Tally

log = logging.getLogger(__name__)

DIRECTION = "backward"
# How often backward sync decides a key again that forward sync is writing, and how long it waits.
_MID_WRITE_RETRIES = 25
_MID_WRITE_PAUSE = 0.02


@dataclass
class BackwardResult(Tally):
    COUNTS = ("events", "written", "deleted", "echoes", "skipped", "collapsed", "conflicts", "quarantined",
              "undecided_types")
    newest_at: dt.datetime | None = None
    # The newest change made in MongoDB by someone other than forward sync (not an echo).
    newest_independent: dt.datetime | None = None
    last_token: Any = None


@dataclass
class _Candidate:
    """A key's newest application change in the batch, and the sync write that came after it."""

    event: Event
    overwritten_by: list[str] | None = None  # the tokens of a later sync write of the key


@dataclass
class _Plan:
    puts: list[tuple[Event, dict[str, Any], str, list | None]] = field(default_factory=list)
    deletes: list[Event] = field(default_factory=list)
    restores: list[tuple[Event, dict[str, Any]]] = field(default_factory=list)
    forward_wins: list[tuple[Event, dict[str, Any]]] = field(default_factory=list)
    poison: list[tuple[Event, str]] = field(default_factory=list)
    retyped: list[tuple[Event, list | None]] = field(default_factory=list)
    mongodb_wins: list[tuple[Event, dict[str, Any]]] = field(default_factory=list)
    confirmed: list[Note] = field(default_factory=list)
    withdrawn: list[Note] = field(default_factory=list)

    def drop(self, keys: set[bytes]) -> None:
        """Forget every decision about these keys (identities)."""
        for name in ("puts", "restores", "forward_wins", "poison", "retyped", "mongodb_wins"):
            setattr(self, name, [p for p in getattr(self, name) if p[0].identity not in keys])
        self.deletes = [e for e in self.deletes if e.identity not in keys]
        self.confirmed = [n for n in self.confirmed if identity(n[0]) not in keys]
        self.withdrawn = [n for n in self.withdrawn if identity(n[0]) not in keys]


def _classify(events: list[Event], entries: dict[bytes, LedgerEntry], result: BackwardResult,
              consumed: list[tuple[Note, str]]) -> dict[bytes, _Candidate]:
    """Sync writes (by their ledger token, each met once; a replayed event by its id) are echoes;
    the newest application change of each key is the candidate to write to DynamoDB."""
    latest: dict[bytes, _Candidate] = {}
    for event in events:
        if event.op == "gone":
            # Deleted before its post-image was read: the delete event follows.
            result.skipped += 1
            continue
        entry = entries.get(event.identity)
        slot = event.write_token
        if entry is not None and slot is not None:
            tokens = entry.pending.get(slot)
            if entry.met.get(slot) == event.event_id or tokens:
                if tokens and entry.met.get(slot) != event.event_id:
                    consumed.append(((event.id, slot, tokens.pop(0)), event.event_id))
                    met_tokens = [consumed[-1][0][2]]
                    if not tokens:
                        del entry.pending[slot]
                else:
                    met_tokens = []
                result.echoes += 1
                if event.identity in latest and latest[event.identity].overwritten_by is None:
                    latest[event.identity].overwritten_by = met_tokens
                continue
        if event.identity in latest:
            result.collapsed += 1
            del latest[event.identity]
        latest[event.identity] = _Candidate(event)
    return latest


def _without(entries: dict[bytes, LedgerEntry], consumed: list[tuple[Note, str]]) -> dict[bytes, LedgerEntry]:
    """The entries as read, less the tokens this batch's echoes met (consumed at its end)."""
    for (document_id, slot, token), _ in consumed:
        entry = entries.get(identity(document_id))
        tokens = entry.pending.get(slot, []) if entry is not None else []
        if token in tokens:
            tokens.remove(token)
            if not tokens:
                del entry.pending[slot]
    return entries


def _overwritten(candidate: _Candidate, now: dict[str, Any] | None, entry: LedgerEntry | None) -> list[str] | None:
    """The tokens of the sync write that replaced or deleted the key after this change, if any:
    met later in this batch, or still ahead in the change stream (the document holds it, unmet)."""
    if candidate.overwritten_by is not None:
        return candidate.overwritten_by
    if entry is None:
        return None
    slot = TOMBSTONE if now is None else (mark_of(now).get("w") or mark_of(now).get("seq"))
    return entry.pending.get(slot) if slot else None


def _both_wrote(event: Event, tokens: list[str], entry: LedgerEntry | None, policy: str, exact: bool,
                ledger: EchoLedger, now: dict[str, Any] | None, result: BackwardResult) -> bool:
    """The application changed the key, and forward sync wrote DynamoDB's change over it before
    backward sync read it: a conflict. True when MongoDB's change is to win (and is known)."""
    if any(t.startswith(CONFLICT_TOKEN) for t in tokens):
        # Forward sync saw this change, resolved the conflict for DynamoDB and reported it.
        result.skipped += 1
        return False
    result.conflicts += 1
    dynamodb_at = entry.changed_at if entry is not None else None
    if policy == "mongodb_wins":
        winner = "mongodb"
    elif policy == "latest_wins":
        winner = "dynamodb" if dynamodb_at is None else later(dynamodb_at, event.at)
    else:
        winner = "dynamodb"
    known = exact or event.op == "delete"
    detail = "the application changed the key while forward sync wrote a DynamoDB change over it"
    if winner == "mongodb" and not known:
        winner = "dynamodb"
        detail += ("; MongoDB's version was overwritten before backward sync could read it (post-images are "
                   "not exact: enable changeStreamPreAndPostImages on the collection)")
    ledger.report_conflict(event.id, policy, winner, now, event.document, event.at, detail,
                           dynamodb_at=dynamodb_at, mongodb_at=event.at)
    if winner != "mongodb":
        result.skipped += 1
    return winner == "mongodb"


def apply_events(
    events: list[Event],
    *,
    dynamodb: Any,
    source_table: str,
    key_attrs: tuple[str, ...],
    collection: Collection,
    ledger: EchoLedger,
    policy: str,
    keys: KeyStates,
    quarantine: Quarantine | None = None,
    exact_images: bool = False,
    bson_mapping: BsonMapping = DEFAULT_BSON_MAPPING,
    key_types: dict[str, str] | None = None,
    types: TableTypes | None = None,
    _attempt: int = 0,
) -> BackwardResult:
    """Write one batch of change events to DynamoDB; safe to repeat.

    ``exact_images``: the events' post-images are the documents as each change left them (MongoDB 6+
    with ``changeStreamPreAndPostImages``), not looked up later. Without, a post-image may show a
    later state of the document than its event; that later state has its own event further on, so
    writing it early loses nothing, and skipping a sync write's event never hides an application
    change (the sync's writes are inserts and replacements, whose events carry their own document
    on every server). ``key_types`` (``{name: S|N|B}``, hash key first) lets an item DynamoDB would
    refuse (wrong key type, over 400 KB) be quarantined before it is written. What is lost without exact images is an application version that forward
    sync overwrote before backward sync read it: the conflict is still reported, but MongoDB's
    version cannot win it.
    """
    result = BackwardResult(events=len(events))
    if not events:
        return result
    result.newest_at = max(e.at for e in events)
    result.last_token = events[-1].token
    ids = list({e.identity: e.id for e in events}.values())
    entries = ledger.lookup(TO_MONGODB, ids)
    consumed: list[tuple[Note, str]] = []
    latest = _classify(events, entries, result, consumed)
    if latest:
        result.newest_independent = max(c.event.at for c in latest.values())
    wanted = [c.event.id for c in latest.values()]
    # Read in forward sync's write order reversed (it notes the key's next write, writes the document
    # and the ledger note, then records the key): a key whose state is unchanged when backward sync
    # records its own (compare-and-set) saw every forward write in its document and ledger entry.
    states = keys.read(wanted)
    current = {identity(d["_id"]): d for d in collection.find({"_id": {"$in": wanted}})} if wanted else {}
    entries = _without(ledger.lookup(TO_MONGODB, wanted), consumed)
    deferred = ledger.deferred(wanted)
    # What DynamoDB holds now for these keys (consistent reads): to skip writes that change nothing,
    # and to give back the types of attributes a document carries without their hints.
    held = current_items(dynamodb, source_table, key_attrs, [c.event.id for c in latest.values()])
    plan = _Plan()
    processed = [(c.event.id, c.event.position) for c in latest.values() if c.event.position is not None]
    holding = {key: content_hash(item) for key, item in held.items()}
    # This relay's own writes to DynamoDB still waiting for their echo: notes a stop left behind
    # are settled with them.
    own = ledger.lookup(TO_DYNAMODB, wanted)
    busy: set[bytes] = set()
    for key, candidate in latest.items():
        event, now = candidate.event, current.get(key)
        state = states.get(key)
        if event.position is not None and state is not None and event.position <= state.bpos:
            # Processed before: the change stream was replayed from an older position.
            result.skipped += 1
            continue
        if state is not None and state.next_seq > state.seq and _attempt < _MID_WRITE_RETRIES:
            # Forward sync is between writing the document and recording the key: decided once it
            # has (a relay that stopped there leaves the note until it replays, hence the bound).
            busy.add(key)
            continue
        tokens = _overwritten(candidate, now, entries.get(key))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("key %s: %s at %s (position %s); MongoDB's mark %s, overwritten by %s; state %s; DynamoDB holds %s",
                      event.id, event.op, event.at, event.position, mark_of(now), tokens, state, holding.get(key))
        restore_in_mongodb = False
        if tokens is not None:
            if not _both_wrote(event, tokens, entries.get(key), policy, exact_images, ledger, now, result):
                continue
            restore_in_mongodb = True
        elif event.op == "delete" and now is not None:
            # Written again after the delete: the delete is superseded by that write.
            result.skipped += 1
            _settle(event, state, TOMBSTONE, holding.get(key, TOMBSTONE), own.get(key), plan)
            continue
        if event.op == "delete":
            if _written_before(event, state, TOMBSTONE, holding.get(key, TOMBSTONE), own.get(key), plan, result):
                continue
            if _dynamodb_won(event, deferred.get(key), plan, result):
                continue
            plan.deletes.append(event)
            if restore_in_mongodb:
                plan.restores.append((event, None))
            continue
        try:
            item, hints, undecided = to_item(event, key_attrs, states.get(key), bson_mapping, key_types, types,
                                             held.get(key))
        except Unrepresentable as error:
            plan.poison.append((event, error.reason))
            continue
        if undecided:
            result.undecided_types += len(undecided)
            log.warning("table %s: _id=%r was written without _ddb and its values at %s no longer fit their "
                        "DynamoDB types; written as their plain types", ledger.table, event.id, undecided)
        digest = content_hash(item)
        if _written_before(event, state, digest, holding.get(key, TOMBSTONE), own.get(key), plan, result):
            # The relay stopped after the write, maybe before the types went into the document.
            plan.retyped.append((event, hints))
            continue
        if _dynamodb_won(event, deferred.get(key), plan, result):
            continue
        plan.puts.append((event, item, digest, hints))
        if restore_in_mongodb:
            plan.restores.append((event, event.document))
    # A write that would not change DynamoDB is not made: DynamoDB would write no stream record for
    # it, so its echo would never come back; both stores already agree on it.
    typed = [(e, h) for e, h in [(e, h) for e, _, _, h in plan.puts] + plan.retyped
             if h != ((e.document.get(RESERVED) or {}).get("t"))]
    agreed = [(e.id, d, h) for e, _, d, h in plan.puts if holding.get(e.identity) == d]
    plan.puts = [p for p in plan.puts if holding.get(p[0].identity) != p[2]]
    unchanged = [e for e in plan.deletes if e.identity not in holding]
    plan.deletes = [e for e in plan.deletes if e.identity in holding]
    moved = keys.record_backward(
        [(i, d, h, None) for i, d, h in agreed] + [(e.id, TOMBSTONE, None, None) for e in unchanged]
        + [(e.id, d, h, e.position) for e, _, d, h in plan.puts]
        + [(e.id, TOMBSTONE, None, e.position) for e in plan.deletes], result.newest_at,
        states if _attempt < _MID_WRITE_RETRIES else None) | busy
    if moved:
        # Forward sync wrote these keys since they were read: decided again below, from what they hold now.
        plan.drop(moved)
        typed = [(e, h) for e, h in typed if e.identity not in moved]
        agreed = [a for a in agreed if identity(a[0]) not in moved]
        unchanged = [e for e in unchanged if e.identity not in moved]
        processed = [p for p in processed if identity(p[0]) not in moved]
        consumed = [c for c in consumed if identity(c[0][0]) not in moved]
    result.skipped += len(agreed) + len(unchanged)
    if deferred:
        ledger.clear_deferred([c.event.id for k, c in latest.items() if k in deferred and k not in moved])
    _quarantine(plan.poison, quarantine, source_table, result)
    if types is not None:
        types.learn([e.document for e, _, _, _ in plan.puts], plain=False)
    for event, waiting in plan.forward_wins:
        ledger.resolve_deferred(event.id, policy, "dynamodb", waiting, event.document, event.at)
        # DynamoDB's change won: MongoDB gets what DynamoDB holds now (that change, or a later one).
        item = held.get(event.identity)
        state = states.get(event.identity)
        won = synced_document(item, key_attrs, state.seq if state else "", event.at) if item is not None else None
        write_mongodb(collection, ledger, keys, event, won)
    for event, waiting in plan.mongodb_wins:
        ledger.resolve_deferred(event.id, policy, "mongodb", waiting, event.document, event.at)
    writes = [(e.id, d) for e, _, d, _ in plan.puts] + [(e.id, TOMBSTONE) for e in plan.deletes]
    missed: list[Note] = []
    refused_ids: set[bytes] = set()
    if writes:
        notes = ledger.intend(TO_DYNAMODB, writes, [e.at for e, _, _, _ in plan.puts] + [e.at for e in plan.deletes])
        refused = batch_write(dynamodb, source_table, [(e, item) for e, item, _, _ in plan.puts])
        refused_ids = {e.identity for e, _ in refused}
        missed.extend(n for n in notes[: len(plan.puts)] if identity(n[0]) in refused_ids)
        _quarantine(refused, quarantine, source_table, result)
        for e, note in zip(plan.deletes, notes[len(plan.puts):]):
            # DynamoDB may have deleted the item itself since it was read: that delete writes no
            # stream record, so its echo would never come back.
            key = dynamodb_key(e.id, key_attrs)
            if not dynamodb.delete_item(TableName=source_table, Key=key, ReturnValues="ALL_OLD").get("Attributes"):
                missed.append(note)
        ledger.withdraw(TO_DYNAMODB, missed)
        ledger.confirm(TO_DYNAMODB, [n for n in notes if n not in missed])
    for event, document in plan.restores:
        if event.identity not in refused_ids:
            write_mongodb(collection, ledger, keys, event, document)
    _note_types(collection, [(e, h) for e, h in typed if e.identity not in refused_ids])
    ledger.confirm(TO_DYNAMODB, plan.confirmed)
    ledger.withdraw(TO_DYNAMODB, plan.withdrawn)
    keys.processed_backward(processed)
    result.written = len(plan.puts) - len(refused_ids)
    result.deleted = len(plan.deletes) - sum(1 for n in missed if n[1] == TOMBSTONE)
    if consumed:
        ledger.consume(TO_MONGODB, [note for note, _ in consumed], events=[e for _, e in consumed])
    if quarantine is not None:
        synced = [e.id for e, _, _, _ in plan.puts if e.identity not in refused_ids] + [e.id for e in plan.deletes]
        synced += [i for i, _, _ in agreed] + [e.id for e in unchanged]
        if synced:
            quarantine.resolve(DIRECTION, synced)
    if moved:
        if busy:
            time.sleep(_MID_WRITE_PAUSE)
        again = apply_events([e for e in events if e.identity in moved], dynamodb=dynamodb, source_table=source_table,
                             key_attrs=key_attrs, collection=collection, ledger=ledger, policy=policy, keys=keys,
                             quarantine=quarantine, exact_images=exact_images, bson_mapping=bson_mapping,
                             key_types=key_types, types=types, _attempt=_attempt + 1)
        last_token, events_read = result.last_token, result.events
        result.add(again)
        result.last_token, result.events = last_token, events_read
    return result


def _written_before(event: Event, state: KeyState | None, digest: str, held: str, own: LedgerEntry | None,
                   plan: "_Plan", result: BackwardResult) -> bool:
    """The change's write was noted before the relay stopped and is made or overtaken: not made
    again, its note settled."""
    if not _made_before(event, state, digest, held):
        return False
    result.skipped += 1
    _settle(event, state, digest, held, own, plan)
    return True


def _dynamodb_won(event: Event, waiting: dict[str, Any] | None, plan: "_Plan", result: BackwardResult) -> bool:
    """A latest_wins conflict forward sync left for this change to decide: True when DynamoDB's
    change is the later one (MongoDB then gets DynamoDB's item)."""
    if waiting is None:
        return False
    result.conflicts += 1
    if later(waiting["created"], event.at) == "dynamodb":
        plan.forward_wins.append((event, waiting))
        return True
    plan.mongodb_wins.append((event, waiting))
    return False


def _settle(event: Event, state: KeyState | None, digest: str, held: str, own: LedgerEntry | None,
            plan: "_Plan") -> None:
    """A change whose write was noted before the relay stopped, and is not written now: the note is
    confirmed if DynamoDB holds the write, else withdrawn (its echo will never come)."""
    if event.position is None or state is None or not state.bpos < event.position <= state.bnext or own is None:
        return
    notes = [(event.id, digest, t) for t in own.pending.get(digest, ())]
    (plan.confirmed if held == digest else plan.withdrawn).extend(notes)


def _made_before(event: Event, state: KeyState | None, digest: str, held: str) -> bool:
    """The change's write was noted before the relay stopped (``bnext``): made already (DynamoDB
    holds it), or overtaken by a version both stores agreed on since."""
    if event.position is None or state is None or not state.bpos < event.position <= state.bnext:
        return False
    return held == digest or state.h != digest


def _note_types(collection: Collection, typed: list[tuple[Event, list | None]]) -> None:
    """Write the hints the type memory gave a document into its ``_ddb``, so that MongoDB holds what
    DynamoDB was given (verification compares the two). Only while the hinted attributes still hold
    the values read: an application change since has its own event."""
    for event, hints in typed:
        fields = {str(h["p"][0]) for h in hints or ()}
        condition = {"_id": event.id, **{f: event.document[f] for f in fields if f in event.document}}
        collection.update_one(condition, {"$set": {f"{RESERVED}.t": hints}})


def _quarantine(poison: list[tuple[Event, str]], quarantine: Quarantine | None, table: str,
                result: BackwardResult) -> None:
    for event, reason in poison:
        if quarantine is None:
            raise BackwardApplyError(
                f"table {table!r}: document _id={event.id!r} cannot be written to DynamoDB: {reason}"
            )
        log.error("table %s: document _id=%r cannot be written to DynamoDB: %s; quarantined", table, event.id, reason)
        quarantine.put(DIRECTION, event.id, reason, event.document, position=event.token)
        result.quarantined += 1
