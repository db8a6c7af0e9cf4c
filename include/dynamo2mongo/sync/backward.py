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

import bson
from botocore.exceptions import ClientError
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from dynamo2mongo.mapping.canonical import content_hash
from dynamo2mongo.sync.echo import TO_DYNAMODB, TO_MONGODB, TOMBSTONE, EchoLedger, LedgerEntry, Note, identity
from dynamo2mongo.sync.forward import (
    CONFLICT_TOKEN, later, mark_of, synced_document,
)
from dynamo2mongo.mapping.keys import MissingKeyField, document_id, key_fields
from dynamo2mongo.sync.keystate import KeyState, KeyStates
from dynamo2mongo.sync.quarantine import Quarantine
from dynamo2mongo.sync.typememory import TableTypes, restore
from dynamo2mongo.mapping import (
    DEFAULT_BSON_MAPPING, RESERVED, BsonMapping, Unrepresentable, document_to_item, item_problems, item_to_document,
)
from dynamo2mongo.errors import Permanent

log = logging.getLogger(__name__)

_BATCH_WRITE_LIMIT = 25
_BATCH_GET_LIMIT = 100
ENDING_EVENTS = ("invalidate", "drop", "rename", "dropDatabase")
DIRECTION = "backward"
_COUNTS = ("events", "written", "deleted", "echoes", "skipped", "collapsed", "conflicts", "quarantined",
           "undecided_types")
# How often backward sync decides a key again that forward sync is writing, and how long it waits.
_MID_WRITE_RETRIES = 25
_MID_WRITE_PAUSE = 0.02
# DynamoDB's per-item refusals: permanent for that item, whatever the retry.
_ITEM_REFUSALS = ("ValidationException",)


class BackwardApplyError(Permanent, RuntimeError):
    """A change cannot be written to DynamoDB; the message names the table and the key."""


class StreamEnded(Permanent, RuntimeError):
    """The change stream was invalidated (collection dropped or renamed); syncing cannot go on."""


@dataclass(frozen=True)
class Event:
    id: Any
    op: str  # "upsert", "delete" or "gone"
    document: dict[str, Any] | None
    at: dt.datetime
    token: Any
    kind: str = "update"  # the change event's operationType
    before: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    # The cluster time as one number (seconds << 32 | increment); None for a change made up by a
    # retry, which is never a replay.
    position: int | None = None

    @property
    def identity(self) -> bytes:
        return identity(self.id)

    @property
    def event_id(self) -> str:
        return str((self.token or {}).get("_data") if isinstance(self.token, dict) else self.token)

    @property
    def write_token(self) -> str | None:
        """The ledger slot of the sync write this event may be: a delete's tombstone, or the token in
        the mark of an inserted or replacing document, which is that write's own (an update event's
        post-image is never a sync write: the sync only inserts and replaces)."""
        if self.op == "delete":
            return TOMBSTONE
        if self.op == "upsert" and self.kind in ("insert", "replace"):
            mark = mark_of(self.document)
            return mark.get("w") or mark.get("seq") or None
        return None


@dataclass
class BackwardResult:
    events: int = 0
    written: int = 0
    deleted: int = 0
    echoes: int = 0
    skipped: int = 0
    collapsed: int = 0
    conflicts: int = 0
    quarantined: int = 0
    undecided_types: int = 0
    newest_at: dt.datetime | None = None
    # The newest change made in MongoDB by someone other than forward sync (not an echo).
    newest_independent: dt.datetime | None = None
    last_token: Any = None

    def add(self, other: "BackwardResult") -> None:
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.newest_at and (self.newest_at is None or other.newest_at > self.newest_at):
            self.newest_at = other.newest_at
        if other.newest_independent and (
            self.newest_independent is None or other.newest_independent > self.newest_independent
        ):
            self.newest_independent = other.newest_independent
        self.last_token = other.last_token or self.last_token

    def counts(self) -> dict[str, int]:
        return {n: getattr(self, n) for n in _COUNTS}


def images_enabled(collection: Collection) -> bool:
    """Whether the collection keeps each change's pre- and post-image (``changeStreamPreAndPostImages``)."""
    for info in collection.database.list_collections(filter={"name": collection.name}):
        return bool(((info.get("options") or {}).get("changeStreamPreAndPostImages") or {}).get("enabled"))
    return False


def ensure_images(collection: Collection) -> str | None:
    """Turn on exact pre- and post-images for the collection's change events (MongoDB 6+); None when
    they are on, else why they cannot be (backward sync then works with looked-up post-images)."""
    option = {"changeStreamPreAndPostImages": {"enabled": True}}
    try:
        if images_enabled(collection):
            return None
        if collection.name in collection.database.list_collection_names(filter={"name": collection.name}):
            collection.database.command({"collMod": collection.name, **option})
        else:
            collection.database.create_collection(collection.name, **option)
    except OperationFailure as error:
        return (f"{collection.full_name}: exact change-event images cannot be enabled ({error}); MongoDB 6 or later "
                f"and the collMod privilege are needed. Without them a MongoDB change that forward sync overwrote "
                f"before backward sync read it cannot win a conflict")
    return None if images_enabled(collection) else f"{collection.full_name}: the server ignored changeStreamPreAndPostImages"


def to_event(change: dict[str, Any], collection_name: str) -> Event | None:
    """One change-stream event; None for events that change no document (e.g. createIndexes)."""
    operation = change.get("operationType")
    if operation in ENDING_EVENTS:
        ns = change.get("ns") or {}
        if ns.get("coll") and ns["coll"] != collection_name:
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
    position = (cluster_time.time << 32 | cluster_time.inc) if cluster_time is not None else None
    if operation == "update" and _only_reserved(change.get("updateDescription")):
        # Only ``_ddb`` changed (the sync noting a document's types): nothing DynamoDB holds.
        return None
    if operation in ("insert", "update", "replace"):
        document = change.get("fullDocument")
        if not document or "_id" not in document:
            # The document was deleted before its post-image was looked up: the delete event follows.
            key = (change.get("documentKey") or {}).get("_id")
            return Event(key, "gone", None, at, token, operation, position=position)
        return Event(document["_id"], "upsert", document, at, token, operation, change.get("fullDocumentBeforeChange"),
                     position)
    if operation == "delete":
        return Event(change["documentKey"]["_id"], "delete", None, at, token, operation, position=position)
    return None


def _only_reserved(description: dict[str, Any] | None) -> bool:
    if not description:
        return False
    paths = list(description.get("updatedFields") or {}) + list(description.get("removedFields") or [])
    paths += [t.get("field", "") for t in description.get("truncatedArrays") or []]
    return bool(paths) and all(p == RESERVED or p.startswith(f"{RESERVED}.") for p in paths)


def dynamodb_key(document_id: Any, key_attrs: tuple[str, ...]) -> dict[str, Any]:
    """The DynamoDB key of a document ``_id`` (the convention of dynamo2mongo.mapping.keys)."""
    fields = key_fields(key_attrs)
    values = document_id if len(fields) > 1 else {fields[0]: document_id}
    try:
        return document_to_item({f: values[f] for f in fields})
    except (KeyError, TypeError):
        raise BackwardApplyError(f"_id {document_id!r} does not follow the key convention ({', '.join(fields)})") from None


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


def _to_item(event: Event, key_attrs: tuple[str, ...], state: KeyState | None, result: BackwardResult,
             ledger: EchoLedger, bson_mapping: BsonMapping, key_types: dict[str, str] | None,
             types: TableTypes | None, held: dict[str, Any] | None) -> tuple[dict[str, Any], list | None]:
    """The DynamoDB item of an application's document, or Unrepresentable saying why it has none."""
    document = event.document
    try:
        expected = document_id(document, key_attrs)
    except MissingKeyField as error:
        raise Unrepresentable(f"{error}; write every key field") from None
    # Compared as BSON: {sk, pk} is another _id than {pk, sk}, though Python's dicts are equal.
    if identity(expected) != event.identity:
        raise Unrepresentable(
            f"_id {event.id!r} does not follow the key convention: the key fields give {expected!r}. Derive _id "
            f"with dynamo2mongo.mapping.keys.document_id (a second document for one DynamoDB item is refused)"
        )
    # The types of the version both stores last agreed on; for a key the sync never wrote, those of
    # the document before this change (a pre-image, where the collection keeps them).
    remembered = state.t if state is not None else ((event.before or {}).get(RESERVED) or {}).get("t")
    held_hints = ((item_to_document(held, key_attrs).get(RESERVED) or {}).get("t")) if held else None
    document, undecided = restore(document, remembered, types, held_hints)
    if undecided:
        result.undecided_types += len(undecided)
        log.warning("table %s: _id=%r was written without _ddb and its values at %s no longer fit their "
                    "DynamoDB types; written as their plain types", ledger.table, event.id, undecided)
    item = document_to_item(document, bson_mapping)
    problem = item_problems(item, key_types) if key_types else None
    if problem:
        raise Unrepresentable(problem)
    return item, ((document.get(RESERVED) or {}).get("t"))


def _current_items(dynamodb: Any, table: str, key_attrs: tuple[str, ...], ids: list[Any]) -> dict[bytes, dict]:
    """The items DynamoDB holds now for these keys (consistent reads); an ``_id`` that names no
    DynamoDB key is left out (its document is quarantined)."""
    found: dict[bytes, dict] = {}
    keys_of = []
    for wanted in ids:
        try:
            keys_of.append(dynamodb_key(wanted, key_attrs))
        except (BackwardApplyError, Unrepresentable):
            continue
    for start in range(0, len(keys_of), _BATCH_GET_LIMIT):
        keys = keys_of[start : start + _BATCH_GET_LIMIT]
        pending: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True}}
        delay = 0.05
        while pending:
            response = dynamodb.batch_get_item(RequestItems=pending)
            for item in response.get("Responses", {}).get(table, []):
                key = {name: item[name] for name in key_attrs}
                found[identity(item_to_document(key, key_attrs)["_id"])] = item
            pending = response.get("UnprocessedKeys") or {}
            if pending:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
    return found


def _batch_write(dynamodb: Any, table: str, puts: list[tuple[Event, dict[str, Any]]]) -> list[tuple[Event, str]]:
    """Put the items; returns those DynamoDB refused, each with its reason.

    A batch DynamoDB refuses as a whole (one item it cannot hold fails all 25) is retried item by
    item, so that only the refused item is held back.
    """
    refused: list[tuple[Event, str]] = []
    for start in range(0, len(puts), _BATCH_WRITE_LIMIT):
        chunk = puts[start : start + _BATCH_WRITE_LIMIT]
        pending = {table: [{"PutRequest": {"Item": item}} for _, item in chunk]}
        delay = 0.05
        try:
            while pending:
                pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                if pending:
                    # Throttled: back off before retrying only what was not processed.
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in _ITEM_REFUSALS:
                raise
            for event, item in chunk:
                try:
                    dynamodb.put_item(TableName=table, Item=item)
                except ClientError as single:
                    if single.response.get("Error", {}).get("Code") not in _ITEM_REFUSALS:
                        raise
                    refused.append((event, f"DynamoDB refused the item: {single.response['Error'].get('Message')}"))
    return refused


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
    held = _current_items(dynamodb, source_table, key_attrs, [c.event.id for c in latest.values()])
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
            item, hints = _to_item(event, key_attrs, states.get(key), result, ledger, bson_mapping, key_types, types,
                                   held.get(key))
        except Unrepresentable as error:
            plan.poison.append((event, error.reason))
            continue
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
        _write_mongodb(collection, ledger, keys, event, won)
    for event, waiting in plan.mongodb_wins:
        ledger.resolve_deferred(event.id, policy, "mongodb", waiting, event.document, event.at)
    writes = [(e.id, d) for e, _, d, _ in plan.puts] + [(e.id, TOMBSTONE) for e in plan.deletes]
    missed: list[Note] = []
    refused_ids: set[bytes] = set()
    if writes:
        notes = ledger.intend(TO_DYNAMODB, writes, [e.at for e, _, _, _ in plan.puts] + [e.at for e in plan.deletes])
        refused = _batch_write(dynamodb, source_table, [(e, item) for e, item, _, _ in plan.puts])
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
            _write_mongodb(collection, ledger, keys, event, document)
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


def _write_mongodb(collection: Collection, ledger: EchoLedger, keys: KeyStates, event: Event,
                   document: dict[str, Any] | None) -> None:
    """Write a version that won a conflict to MongoDB as a sync write: noted first, by a token of its
    own in its mark, so that this relay meets its change event as an echo."""
    token = f"b{bson.ObjectId()}"
    if document is None:
        keys.record_backward([(event.id, TOMBSTONE, None, None)], event.at)
        notes = ledger.intend_tokens(TO_MONGODB, [(event.id, TOMBSTONE, token)], event.at)
        collection.delete_one({"_id": event.id})
    else:
        document = dict(document)
        reserved = dict(document.get(RESERVED) or {})
        reserved["sync"] = {**(reserved.get("sync") or {}), "w": token}
        document[RESERVED] = reserved
        keys.record_backward([(event.id, content_hash(document_to_item(document)), reserved.get("t"), None)], event.at)
        notes = ledger.intend_tokens(TO_MONGODB, [(event.id, token, token)], event.at)
        collection.replace_one({"_id": event.id}, document, upsert=True)
    ledger.confirm(TO_MONGODB, notes)


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
