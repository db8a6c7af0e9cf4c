"""Runs a history against the real servers through the real relays, in-process and one step at a time.

Everything the oracle needs is recorded while the history runs, because the stores' final state
alone cannot tell a lost write from a superseded one: per key, every application write with the
content it left on its side (read back right after it), the stream record it made, the sync points
and relay activity between writes, and the conflict records counted at each sync point.

Relays are driven from outside only: their clients and collections are wrapped so that a kill (a
private ``Killed``, a BaseException so that no ``except Exception`` in the relay can swallow it,
as it cannot swallow a SIGKILL) fires at the Nth call of one collaborator, before or after the real
call; the runner then drops that relay object and builds a fresh one on the same persisted state,
which is what a restarted process sees.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import inspect
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import bson
from bson import ObjectId, Regex
from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError, PyMongoError

from dynamo2mongo.sync import forward
from dynamo2mongo.sync import records
from dynamo2mongo.mapping.canonical import canonical_item
from dynamo2mongo.config import parse_config
from dynamo2mongo.mapping.keys import document_id
from dynamo2mongo.sync.relay.backward import BackwardRelay
from dynamo2mongo.sync.relay.forward import ForwardRelay
from dynamo2mongo.state import StateStore
from dynamo2mongo.prepare.stream import ensure_stream
from dynamo2mongo.prepare.table import describe_table
from dynamo2mongo.mapping import RESERVED, Unrepresentable, document_to_item, item_to_document

from tests.model.history import SCHEMA, History, describe, key_item

KEY = ("pk", "sk")
POISON = "<poison>"  # content of a write DynamoDB cannot hold
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
ITEM_LIMIT = 400 * 1024
SYNC_MAX_ROUNDS = 40
# A relay that fails this many rounds in a row within one sync point is stalled: restarting it
# meets the same change again.
STALL_ROUNDS = 3


class Killed(BaseException):
    """The relay process died here."""


# ---- servers and clients --------------------------------------------------------------------------


@dataclass
class Env:
    dynamodb: Any
    streams: Any
    mongo: MongoClient


@contextlib.contextmanager
def servers() -> Iterator[Env]:
    """Both servers as child processes, for runs outside pytest (the soak)."""
    import os

    from dynamo2mongo.sandbox.servers import mongo_server, moto_server, sandbox_env

    with moto_server() as endpoint, mongo_server() as uri:
        os.environ.update(sandbox_env(endpoint))
        with connect(endpoint, uri) as env:
            yield env


@contextlib.contextmanager
def connect(endpoint: str, mongo_uri: str) -> Iterator[Env]:
    session = boto3.session.Session()
    mongo = MongoClient(mongo_uri, tz_aware=True)
    try:
        yield Env(session.client("dynamodb", endpoint_url=endpoint),
                  session.client("dynamodbstreams", endpoint_url=endpoint), mongo)
    finally:
        mongo.close()


# ---- the model's view of contents ---------------------------------------------------------------


def canonical(it: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if it is None else canonical_item(it)


def _same_id(a: Any, b: Any) -> bool:
    # As MongoDB compares them: {sk, pk} is another _id than {pk, sk}.
    return bson.encode({"k": a}) == bson.encode({"k": b})


def model_item(doc: dict[str, Any] | None) -> Any:
    """What a MongoDB document means in DynamoDB, types decided by the table's schema (not by
    ``_ddb``, which the application may have dropped); POISON when DynamoDB cannot hold it."""
    if doc is None:
        return None
    if any(k not in doc for k in KEY) or not _same_id(doc["_id"], document_id(doc, KEY)):
        return POISON
    typed = {k: v for k, v in doc.items() if k != RESERVED}
    hints = [{"p": [name], "t": SCHEMA[name]} for name in typed
             if name in SCHEMA and (SCHEMA[name] in ("SS", "NS", "BS") or name == "big")]
    typed[RESERVED] = {"t": hints}
    try:
        it = document_to_item(typed)
    except (Unrepresentable, TypeError, ValueError):
        return POISON
    if len(bson.encode({k: v for k, v in typed.items() if k != RESERVED})) > ITEM_LIMIT:
        return POISON
    return canonical(it)


def project_item(doc: dict[str, Any] | None) -> Any:
    """What the project's own mapping makes of the document (``_ddb`` hints honoured)."""
    if doc is None:
        return None
    try:
        return canonical(document_to_item(doc))
    except (Unrepresentable, TypeError, ValueError):
        return POISON


# ---- wrapping the relays' collaborators ---------------------------------------------------------


@dataclass
class Kill:
    relay: str
    target: str
    nth: int
    when: str
    step: int
    calls: int = 0


@dataclass
class Interleave:
    """The other relay runs one step of its own right before this relay's Nth call of ``target``:
    the two relays run side by side in production, and their races live between such calls."""

    relay: str
    target: str
    nth: int
    step: int
    calls: int = 0


class Switch:
    """Armed kills and interleavings; each fires once, at its Nth call of its target in its relay."""

    def __init__(self, log: list[str]):
        self.armed: list[Kill] = []
        self.interleaves: list[Interleave] = []
        self.log = log
        self.other_step: Any = None
        self._interleaving = False

    def call(self, relay: str, target: str, fn: Any, args: tuple, kwargs: dict) -> Any:
        weave = next((w for w in self.interleaves if w.relay == relay and w.target == target), None)
        if weave is not None and not self._interleaving:
            weave.calls += 1
            if weave.calls >= weave.nth:
                self.interleaves.remove(weave)
                other = "backward" if relay == "forward" else "forward"
                self.log.append(f"      INTERLEAVE a {other} step before call #{weave.calls} of {relay} {target}")
                self._interleaving = True
                try:
                    self.other_step(other)
                finally:
                    self._interleaving = False
        kill = next((k for k in self.armed if k.relay == relay and k.target == target), None)
        if kill is not None:
            kill.calls += 1
            if kill.calls >= kill.nth:
                self.armed.remove(kill)
                self.log.append(f"      KILL {relay} relay at call #{kill.calls} of {target} ({kill.when} it; armed at step {kill.step})")
                if kill.when == "before":
                    raise Killed(target)
                fn(*args, **kwargs)
                raise Killed(target)
        return fn(*args, **kwargs)


class Hooked:
    """A stand-in for a client or collection whose named methods go through the kill switch."""

    def __init__(self, target: Any, switch: Switch, relay: str, prefix: str, methods: tuple[str, ...],
                 extra: dict[str, Any] | None = None):
        self._target, self._switch, self._relay, self._prefix = target, switch, relay, prefix
        self._methods = methods
        self._extra = extra or {}

    def __getattr__(self, name: str) -> Any:
        if name in self._extra:
            return self._extra[name]
        real = getattr(self._target, name)
        if name in self._methods:
            def hooked(*args: Any, **kwargs: Any) -> Any:
                return self._switch.call(self._relay, f"{self._prefix}.{name}", real, args, kwargs)
            return hooked
        return real

    def __getitem__(self, name: str) -> Any:
        return self._extra.get(f"[{name}]") or self._target[name]


_COLLECTION_METHODS = ("bulk_write", "replace_one", "delete_one", "update_one", "find")


# ---- the stream as the harness sees it ----------------------------------------------------------


class Tap:
    """The harness's own reader of the table's stream: which record each DynamoDB write made."""

    def __init__(self, streams: Any, arn: str):
        self.streams = streams
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        self.iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        self.records: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        new = []
        while True:
            response = self.streams.get_records(ShardIterator=self.iterator, Limit=1000)
            self.iterator = response["NextShardIterator"]
            new += response.get("Records", [])
            if not response.get("Records"):
                break
        self.records += new
        return new

    def record_of(self, new: list[dict[str, Any]], keys: dict[str, Any]) -> dict[str, Any] | None:
        mine = [r for r in new if r["dynamodb"]["Keys"] == keys]
        return mine[-1] if mine else None


class MarkedStreams:
    """The relay's streams client: TTL records get the userIdentity DynamoDB gives them (moto does
    not), and every batch read is kept for Lambda-style redeliveries."""

    def __init__(self, streams: Any, ttl_seqs: set[str], batches: list[list[dict[str, Any]]]):
        self._streams, self._ttl, self._batches = streams, ttl_seqs, batches

    def __getattr__(self, name: str) -> Any:
        return getattr(self._streams, name)

    def get_records(self, **kwargs: Any) -> dict[str, Any]:
        response = self._streams.get_records(**kwargs)
        for record in response.get("Records", []):
            if record["dynamodb"]["SequenceNumber"] in self._ttl:
                record["userIdentity"] = dict(TTL_IDENTITY)
        if response.get("Records"):
            self._batches.append(copy.deepcopy(response["Records"]))
        return response


# ---- what a run leaves for the oracle -----------------------------------------------------------


@dataclass
class Event:
    step: int
    side: str  # "ddb", "mongo" or "ttl"
    content: Any  # canonical item, None (absent) or POISON
    at: float
    seq: str | None = None
    created: dt.datetime | None = None


@dataclass
class Outcome:
    history: History
    table: str
    keys: list[dict[str, Any]]  # document _id per key index
    events: dict[int, list[Event]] = field(default_factory=dict)
    seeded: dict[int, Any] = field(default_factory=dict)
    sync_points: list[int] = field(default_factory=list)
    relay_steps: list[int] = field(default_factory=list)
    conflict_counts: dict[int, dict[int, int]] = field(default_factory=dict)  # sync step -> key -> count
    strays: list[dict[str, Any]] = field(default_factory=list)  # documents off the key convention, at the end
    final_ddb: dict[int, Any] = field(default_factory=dict)
    final_doc: dict[int, Any] = field(default_factory=dict)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # relay failures other than kills
    unsettled: list[int] = field(default_factory=list)  # sync points that never went idle
    ttl_created: list[dt.datetime] = field(default_factory=list)
    ddb_app_created: list[dt.datetime] = field(default_factory=list)
    newest_independent: dt.datetime | None = None
    log: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=dt.timezone.utc) if value is not None and value.tzinfo is None else value


def _accepted(fn: Any, **kwargs: Any) -> dict[str, Any]:
    """The keyword arguments ``fn`` takes (the relays' API is being rewritten)."""
    parameters = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in parameters}


class Runner:
    def __init__(self, env: Env, history: History):
        self.env = env
        self.history = history
        suffix = uuid.uuid4().hex[:10]
        self.source_table = f"model-{suffix}"
        (self.config,) = parse_config({"tables": [{
            "name": f"model_{suffix}",
            "source_table": self.source_table,
            "database": "model",
            "collection": f"c_{suffix}",
            "metadata_database": f"model_meta_{suffix}",
            "export": {"s3_bucket": "unused", "s3_prefix": "exports"},
            "sync": {"batch_size": history.batch_size, "conflict_policy": history.policy},
        }]})
        self.collection = env.mongo[self.config.database][self.config.collection]
        self.meta = env.mongo[self.config.metadata_database]
        self.key_ids = [item_to_document(key_item(history.keys, i), KEY)["_id"] for i in range(len(history.keys))]
        self.outcome = Outcome(history, self.config.name, self.key_ids)
        self.log = self.outcome.log
        self.switch = Switch(self.log)
        self.switch.other_step = self.relay_step
        self.ttl_seqs: set[str] = set()
        self.batches: list[list[dict[str, Any]]] = []
        self.tokens: list[Any] = []
        self.relays: dict[str, Any] = {}
        self.step_number = 0

    # ---- set-up ------------------------------------------------------------------------------

    def setup(self) -> None:
        ddb = self.env.dynamodb
        ddb.create_table(
            TableName=self.source_table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "N"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        )
        arn = ensure_stream(ddb, self.source_table).stream_arn
        self.tap = Tap(self.env.streams, arn)
        # The DAG's unique key index: what turns a second document for one item into a forward stall.
        self.collection.create_index([("pk", 1), ("sk", 1)], unique=True, name="d2m_pk")
        for index, it in sorted(self.history.seeded.items()):
            ddb.put_item(TableName=self.source_table, Item=it)
            document = item_to_document(it, KEY)
            document.setdefault(RESERVED, {})["sync"] = records.baseline_mark(it)
            self.collection.insert_one(document)
            self.outcome.seeded[index] = canonical(it)
        self.tap.poll()
        StateStore(self.meta, self.config.name).update_migration(
            phase="forward_caught_up", stream={"arn": arn, "enabled_by_us": True},
            source=describe_table(ddb, self.source_table).summary())
        self.streams = MarkedStreams(self.env.streams, self.ttl_seqs, self.batches)
        self.build("forward")
        self.build("backward")
        self.sync_point()

    def build(self, direction: str) -> None:
        old = self.relays.pop(direction, None)
        if old is not None and direction == "backward":
            with contextlib.suppress(BaseException):
                old.close()
        ddb = Hooked(self.env.dynamodb, self.switch, direction, "dynamodb", ("batch_write_item", "put_item", "delete_item"))
        if direction == "forward":
            relay = ForwardRelay(self.config, ddb, self.streams, self.env.mongo, poll_seconds=0.05)
        else:
            relay = BackwardRelay(self.config, ddb, self.env.mongo, batch_seconds=0.05)
        self._hook(relay, direction)
        if not relay.start():
            raise RuntimeError(f"{direction} relay did not start")
        self.relays[direction] = relay

    def _hook(self, relay: Any, direction: str) -> None:
        switch = self.switch

        def watch(*args: Any, **kwargs: Any) -> Any:
            # The wire server answers an empty getMore only after maxAwaitTimeMS: short waits keep
            # an idle round cheap.
            kwargs["max_await_time_ms"] = min(kwargs.get("max_await_time_ms") or 20, 20)
            return real_collection.watch(*args, **kwargs)

        real_collection = relay.collection
        relay.collection = Hooked(real_collection, switch, direction, "collection", _COLLECTION_METHODS, {"watch": watch})
        relay.keys.collection = Hooked(relay.keys.collection, switch, direction, "keys", _COLLECTION_METHODS)
        ledger = getattr(relay, "ledger", None)
        if ledger is not None and hasattr(ledger, "collection"):
            ledger.collection = Hooked(ledger.collection, switch, direction, "ledger", _COLLECTION_METHODS)
        checkpoints = relay.checkpoints
        tokens = self.tokens

        def save(position: str, **fields: Any) -> None:
            switch.call(direction, "checkpoints.save", checkpoints.save, (position,), fields)
            if direction == "backward" and fields.get("token") is not None:
                tokens.append(fields["token"])

        relay.checkpoints = Hooked(checkpoints, switch, direction, "checkpoints", (), {"save": save})

    # ---- relays --------------------------------------------------------------------------------

    def relay_step(self, direction: str) -> int | None:
        """Records or events read; None when the relay failed (it is rebuilt either way)."""
        try:
            return self.relays[direction].step()
        except Killed:
            self.build(direction)
            return -1
        except Exception as error:  # noqa: BLE001 - any failure is the relay stopping, to be reported
            text = f"{direction} relay: {type(error).__name__}: {str(error)[:500]}"
            self.log.append(f"      ERROR {text}")
            self.outcome.errors.append(f"step {self.step_number}: {text}\n{traceback.format_exc(limit=3)[-800:]}")
            self.build(direction)
            return None

    def sync_point(self) -> None:
        idle = 0
        failing = {"forward": 0, "backward": 0}
        for _ in range(SYNC_MAX_ROUNDS):
            busy = False
            for direction in ("forward", "backward"):
                read = self.relay_step(direction)
                failing[direction] = failing[direction] + 1 if read is None else 0
                busy |= read != 0
            if max(failing.values()) >= STALL_ROUNDS:
                self.log.append(f"      sync point gave up: a relay fails every round")
                self.outcome.unsettled.append(self.step_number)
                break
            idle = 0 if busy else idle + 1
            if idle >= 2:
                break
        else:
            self.log.append(f"      sync point did not settle in {SYNC_MAX_ROUNDS} rounds")
            self.outcome.unsettled.append(self.step_number)
        if self.step_number not in self.outcome.unsettled:
            # Only a settled sync point orders the writes around it.
            self.outcome.sync_points.append(self.step_number)
        counts: dict[int, int] = {}
        for conflict in self.meta["conflicts"].find({}, {"key": 1}):
            for index, key in enumerate(self.key_ids):
                if bson.encode({"k": conflict.get("key")}) == bson.encode({"k": key}):
                    counts[index] = counts.get(index, 0) + 1
        self.outcome.conflict_counts[self.step_number] = counts

    # ---- application writes --------------------------------------------------------------------

    def _ddb_written(self, k: int, side: str = "ddb") -> str:
        keys = key_item(self.history.keys, k)
        got = self.env.dynamodb.get_item(TableName=self.source_table, Key=keys, ConsistentRead=True).get("Item")
        record = self.tap.record_of(self.tap.poll(), keys)
        if record is None:
            # DynamoDB writes no stream record for a write that changes nothing: no write happened.
            return "no-op (nothing changed)"
        seq = record["dynamodb"]["SequenceNumber"] if record else None
        created = _aware(record["dynamodb"].get("ApproximateCreationDateTime")) if record else None
        if side == "ttl" and seq is not None:
            self.ttl_seqs.add(seq)
            self.outcome.ttl_created.append(created)
        elif created is not None:
            self.outcome.ddb_app_created.append(created)
        self.outcome.events.setdefault(k, []).append(Event(self.step_number, side, canonical(got), time.time(), seq, created))
        return f"seq {seq}" if seq else "no stream record"

    def _mongo_written(self, k: int) -> str:
        doc = self.collection.find_one({"_id": self.key_ids[k]})
        content = model_item(doc)
        self.outcome.events.setdefault(k, []).append(Event(self.step_number, "mongo", content, time.time()))
        return "poison" if content is POISON else "written"

    def _mongo_doc(self, it: dict[str, Any]) -> dict[str, Any]:
        return item_to_document(it, KEY)

    def _mongo_value(self, k: int, attr: str, value: dict[str, Any]) -> Any:
        return item_to_document({**key_item(self.history.keys, k), attr: value}, KEY)[attr]

    def apply(self, step: dict[str, Any]) -> str:
        op = step["op"]
        ddb, table = self.env.dynamodb, self.source_table
        k = step.get("key")
        keys = key_item(self.history.keys, k) if k is not None else None
        _id = self.key_ids[k] if k is not None else None
        if op.startswith("ddb_") or op == "ttl":
            # Records of the relays' own writes made since the last poll must not be taken for this
            # write's: a write that changes nothing makes no record of its own.
            self.tap.poll()
        if op == "ddb_put":
            ddb.put_item(TableName=table, Item=step["item"])
            return self._ddb_written(k)
        if op == "ddb_set":
            ddb.update_item(TableName=table, Key=keys, UpdateExpression="SET #a = :v",
                            ExpressionAttributeNames={"#a": step["attr"]}, ExpressionAttributeValues={":v": step["value"]})
            return self._ddb_written(k)
        if op == "ddb_remove":
            ddb.update_item(TableName=table, Key=keys, UpdateExpression="REMOVE #a",
                            ExpressionAttributeNames={"#a": step["attr"]})
            return self._ddb_written(k)
        if op in ("ddb_delete", "ttl"):
            old = ddb.delete_item(TableName=table, Key=keys, ReturnValues="ALL_OLD").get("Attributes")
            if not old:
                return "no-op (no item)"
            return self._ddb_written(k, "ttl" if op == "ttl" else "ddb")
        if op == "mongo_insert":
            # A refused insert is not attempted: the sandbox's wire server reports the change of an
            # insert that failed on a duplicate key, which no real server does.
            if self.collection.find_one({"_id": _id}, {"_id": 1}) is not None:
                return "no-op (duplicate key)"
            try:
                self.collection.insert_one(self._mongo_doc(step["item"]))
            except DuplicateKeyError:
                return "no-op (duplicate key)"
            return self._mongo_written(k)
        if op in ("mongo_set", "change_back"):
            result = self.collection.update_one({"_id": _id}, {"$set": {step["attr"]: self._mongo_value(k, step["attr"], step["value"])}})
            return self._updated(k, result)
        if op == "mongo_unset":
            result = self.collection.update_one({"_id": _id}, {"$unset": {step["attr"]: ""}})
            return self._updated(k, result)
        if op in ("mongo_replace_ddb", "mongo_replace_plain"):
            document = self._mongo_doc(step["item"])
            current = self.collection.find_one({"_id": _id})
            if op == "mongo_replace_ddb":
                # Read, changed and written back whole: ``_ddb`` as it was read.
                if current is not None and RESERVED in current:
                    document[RESERVED] = current[RESERVED]
            else:
                document.pop(RESERVED, None)
            if current is None and not step.get("upsert"):
                return "no-op (no document)"
            self.collection.replace_one({"_id": _id}, document, upsert=bool(step.get("upsert")))
            return self._mongo_written(k)
        if op == "mongo_delete":
            if not self.collection.delete_one({"_id": _id}).deleted_count:
                return "no-op (no document)"
            return self._mongo_written(k)
        if op == "mongo_update_many":
            ids = [self.key_ids[i] for i in step["keys"]]
            before = {i: self.collection.find_one({"_id": self.key_ids[i]}) for i in step["keys"]}
            self.collection.update_many({"_id": {"$in": ids}}, {"$set": {step["attr"]: self._mongo_value(0, step["attr"], step["value"])}})
            # A document the update left as it was is no write (MongoDB records no change for it).
            there = [i for i in step["keys"]
                     if before[i] is not None and self.collection.find_one({"_id": self.key_ids[i]}) != before[i]]
            for i in there:
                self._mongo_written(i)
            return f"{len(there)} documents"
        if op == "poison":
            return self._poison(step, k, _id)
        if op in ("fwd_step", "bwd_step"):
            self.outcome.relay_steps.append(self.step_number)
            read = self.relay_step("forward" if op == "fwd_step" else "backward")
            return {None: "failed", -1: "killed"}.get(read, f"read {read}")
        if op == "sync":
            self.sync_point()
            return "settled" if self.step_number not in self.outcome.unsettled else "NOT settled"
        if op == "kill":
            self.switch.armed.append(Kill(step["relay"], step["target"], step["nth"], step["when"], self.step_number))
            return "armed"
        if op == "interleave":
            self.switch.interleaves.append(Interleave(step["relay"], step["target"], step["nth"], self.step_number))
            self.outcome.relay_steps.append(self.step_number)
            read = self.relay_step(step["relay"])
            return {None: "failed", -1: "killed"}.get(read, f"read {read}")
        if op == "fwd_rollback":
            return self._forward_rollback(step)
        if op == "lambda_redeliver":
            return self._redeliver(step)
        if op == "bwd_rollback":
            return self._backward_rollback(step)
        if op == "pause":
            time.sleep(step["seconds"])
            return "slept"
        if op == "align_second":
            now = time.time()
            time.sleep((step["at"] - now % 1) % 1)
            return "aligned"
        raise ValueError(f"unknown step {op!r}")

    def _updated(self, k: int, result: Any) -> str:
        if not result.matched_count:
            return "no-op (no document)"
        if not result.modified_count:
            # MongoDB records no change for an update that changes nothing: no write happened.
            return "no-op (nothing changed)"
        return self._mongo_written(k)

    def _poison(self, step: dict[str, Any], k: int, _id: Any) -> str:
        document = self._mongo_doc(step["item"])
        kind = step["kind"]
        if kind == "bad_id":
            pk, sk = self.history.keys[k]
            document["_id"] = {"objectid": ObjectId(), "string": f"{pk}#{sk}", "swapped": {"sk": sk, "pk": pk}}[step["bad_id"]]
            if self.collection.find_one({"$or": [{"_id": document["_id"]}, {"pk": pk, "sk": sk}]}, {"_id": 1}) is not None:
                return "no-op (the unique key index would refuse it)"
            try:
                self.collection.insert_one(document)
            except DuplicateKeyError:
                return "no-op (the unique key index refused it)"
            return f"stray document _id={document['_id']!r}"
        if kind == "nan":
            document["count"] = float("nan")
        elif kind == "regex":
            document["pattern"] = Regex("^ab+c", "i")
        elif kind == "missing_key":
            del document["pk"]
        elif kind == "too_big":
            document["note"] = "x" * (ITEM_LIMIT + 10_000)
        try:
            self.collection.replace_one({"_id": _id}, document, upsert=True)
        except DuplicateKeyError:
            return "no-op (duplicate key)"
        return self._mongo_written(k)

    # ---- redeliveries --------------------------------------------------------------------------

    def _forward_checkpoints(self) -> list[dict[str, Any]]:
        return list(self.meta["checkpoints"].find({"_id.table": self.config.name, "_id.dir": "forward"}))

    def _forward_rollback(self, step: dict[str, Any]) -> str:
        checkpoints = self._forward_checkpoints()
        if step["to"] == "trim_horizon" or not checkpoints:
            self.meta["checkpoints"].delete_many({"_id.table": self.config.name, "_id.dir": "forward"})
            text = "checkpoint removed: replay from TRIM_HORIZON"
        else:
            current = max(c.get("seq") or "" for c in checkpoints)
            earlier = [records.padded(r["dynamodb"]["SequenceNumber"]) for r in self.tap.records]
            earlier = [s for s in earlier if s < current]
            if not earlier:
                return "no-op (nothing earlier)"
            seq = earlier[int(step["fraction"] * len(earlier))]
            self.meta["checkpoints"].update_many({"_id.table": self.config.name, "_id.dir": "forward"}, {"$set": {"seq": seq}})
            text = f"checkpoint {current.lstrip('0')} -> {seq.lstrip('0')}"
        self.build("forward")
        return text

    def _redeliver(self, step: dict[str, Any]) -> str:
        applied = max((c.get("seq") or "" for c in self._forward_checkpoints()), default="")
        done = [b for b in self.batches if records.padded(b[-1]["dynamodb"]["SequenceNumber"]) <= applied]
        if not done:
            return "no-op (no applied batch)"
        batch = copy.deepcopy(done[int(step["fraction"] * len(done))])
        relay = self.relays["forward"]
        self.outcome.relay_steps.append(self.step_number)
        try:
            result = forward.apply_records(batch, self.collection, relay.keys, self.config.name, KEY, sync=relay.sync,
                                           quarantine=relay.quarantine)
        except Killed:
            # The kill armed for the relay hit this invocation instead: a Lambda execution dying.
            return "killed"
        except Exception as error:  # noqa: BLE001 - a Lambda invocation failing is reported like a relay failure
            self.outcome.errors.append(f"step {self.step_number}: Lambda redelivery: {type(error).__name__}: {error}")
            return f"FAILED {type(error).__name__}"
        seqs = [r["dynamodb"]["SequenceNumber"] for r in batch]
        return f"records {seqs[0]}..{seqs[-1]}: {getattr(result, 'counts', lambda: result)()}"

    def _backward_rollback(self, step: dict[str, Any]) -> str:
        if len(self.tokens) < 2:
            return "no-op (fewer than two tokens saved)"
        token = self.tokens[:-1][int(step["fraction"] * (len(self.tokens) - 1))]
        self.meta["checkpoints"].update_many({"_id.table": self.config.name, "_id.dir": "backward"}, {"$set": {"token": token}})
        self.build("backward")
        return f"token {self.tokens.index(token) + 1} of {len(self.tokens)}"

    # ---- the run -------------------------------------------------------------------------------

    def collect(self) -> None:
        out = self.outcome
        for index, keys in enumerate(key_item(self.history.keys, i) for i in range(len(self.history.keys))):
            got = self.env.dynamodb.get_item(TableName=self.source_table, Key=keys, ConsistentRead=True).get("Item")
            out.final_ddb[index] = canonical(got)
            out.final_doc[index] = self.collection.find_one({"_id": self.key_ids[index]})
        for doc in self.collection.find({}):
            if any(k not in doc for k in KEY) or not _same_id(doc["_id"], document_id(doc, KEY)):
                if not any(bson.encode({"k": doc["_id"]}) == bson.encode({"k": i}) for i in self.key_ids):
                    out.strays.append(doc)
        out.conflicts = list(self.meta["conflicts"].find({}))
        out.quarantine = list(self.meta["quarantine"].find({}))
        newest = [_aware(c.get("newest_independent")) for c in self._forward_checkpoints() if c.get("newest_independent")]
        out.newest_independent = max(newest) if newest else None

    def cleanup(self) -> None:
        backward_relay = self.relays.pop("backward", None)
        if backward_relay is not None:
            with contextlib.suppress(BaseException):
                backward_relay.close()
        with contextlib.suppress(Exception):
            self.env.dynamodb.delete_table(TableName=self.source_table)
        with contextlib.suppress(PyMongoError):
            self.collection.drop()
            self.env.mongo.drop_database(self.config.metadata_database)

    def run(self) -> Outcome:
        started = time.monotonic()
        try:
            self.setup()
            for self.step_number, step in enumerate(self.history.steps, 1):
                result = self.apply(step)
                self.log.append(f"{self.step_number:3d}. {describe(step, self.history.keys)} -> {result}")
            self.step_number = len(self.history.steps) + 1
            self.switch.armed.clear()
            self.sync_point()
            self.log.append(f"{self.step_number:3d}. final sync point")
            self.collect()
        finally:
            self.cleanup()
        self.outcome.seconds = time.monotonic() - started
        return self.outcome


def run(env: Env, history: History) -> Outcome:
    return Runner(env, history).run()
