"""Forward and backward sync latency and throughput, each beside a baseline measured in the same run.

    .venv/bin/python -m bench.sync [--records N] [--latency-samples N]

Starts its own moto server and MongoDB (mongo-java-server, or $MONGO_URI when set) and measures:

- forward latency: a put_item until the document is visible in MongoDB (seen by a change stream),
  with writes at a steady pace while dynamo2mongo's ForwardRelay runs in a thread;
- forward throughput: stream records a second the relay applies when it drains a pre-written stream
  from TRIM_HORIZON (inserts, modifies and removes);
- backward latency: a MongoDB write until DynamoDB holds it (the ApproximateCreationDateTime of its
  stream record), with BackwardRelay;
- backward throughput: change events a second the relay applies when it drains pre-written changes.

Each figure has a baseline measured the same way against the same servers: a plain loop that
applies one record or event at a time, without the relay's checkpoints, echo ledger, sequence
guards, tombstones or conflict handling. The ratio is what that machinery costs (or, where the
relay batches, saves). Every measurement gets a fresh table and collection.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import platform
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import moto
from bson import Timestamp
from pymongo import DeleteOne, MongoClient, UpdateOne
from pymongo.collection import Collection

from dynamo2mongo.sync.checkpoints import CheckpointStore
from dynamo2mongo.config import TableConfig, parse_config
from dynamo2mongo.sync.relay.backward import POSITION, BackwardRelay
from dynamo2mongo.sync.relay.forward import ForwardRelay
from dynamo2mongo.sandbox import sample
from dynamo2mongo.sandbox.servers import MONGO_JAVA_SERVER_VERSION, mongo_server, moto_server, sandbox_env
from dynamo2mongo.state import StateStore
from dynamo2mongo.prepare.stream import ensure_stream
from dynamo2mongo.prepare.table import describe_table
from dynamo2mongo.mapping import document_to_item, item_to_document

KEY_ATTRS = sample.KEY_ATTRS
WRITES_PER_SECOND = 20.0
# The idle pause of both forward engines between empty GetRecords calls. The relay's default is 1 s
# (AWS allows 5 GetRecords a second per shard); a short one keeps the poll out of the latency.
POLL_SECONDS = 0.05
# Far from any write's index, so the warm-up key is never written by the workload.
WARM_UP_INDEX = 10**7
ARRIVAL_TIMEOUT = 120.0
DRAIN_TIMEOUT = 1800.0
BATCH_WRITE_LIMIT = 25


# ---- running engines and observers in threads --------------------------------------------------


@dataclass
class Consumer:
    """One sync engine under test: ``run()`` applies changes until ``stop`` is set."""

    name: str
    run: Callable[[], Any]
    stop: threading.Event
    applied: Callable[[], int]
    counts: Callable[[], dict[str, int]]


class Worker:
    """Runs ``subject.run()`` in a thread; ``check()`` re-raises what ended it early."""

    def __init__(self, subject: Any):
        self.subject = subject
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._main, name=subject.name, daemon=True)

    def _main(self) -> None:
        try:
            self.subject.run()
        except Exception as error:  # noqa: BLE001 - re-raised in the main thread by check()
            self.error = error

    def __enter__(self) -> "Worker":
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.subject.stop.set()
        self.thread.join(60)
        if self.thread.is_alive():
            raise RuntimeError(f"{self.subject.name} did not stop within 60 s")

    def check(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"{self.subject.name} failed: {self.error!r}") from self.error
        if not self.thread.is_alive():
            raise RuntimeError(f"{self.subject.name} stopped on its own")


def wait_until(condition: Callable[[], bool], workers: list[Worker], what: str, timeout: float = ARRIVAL_TIMEOUT,
               interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for worker in workers:
            worker.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(interval)


def paced(count: int, per_second: float) -> Iterator[int]:
    """0..count-1 on a fixed schedule, so a slow write does not slow the pace of the next ones."""
    start = time.monotonic()
    for index in range(count):
        delay = start + index / per_second - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield index


def sample_index(write: int) -> int:
    """Write ``write`` inserts a new key, except every 4th, which changes the key inserted ~1 s before."""
    return write - 19 if write % 4 == 0 and write >= 19 else write


def document_id(index: int) -> Any:
    item = sample.item(index)
    return item_to_document({name: item[name] for name in KEY_ATTRS}, KEY_ATTRS)["_id"]


def document(index: int, write: int) -> dict[str, Any]:
    return item_to_document(sample.item(index), KEY_ATTRS) | {"w": write}


# ---- observing arrivals --------------------------------------------------------------------------


class Arrivals:
    """When each write (its ``w`` value) became visible, per key (the sample item's ``sk``, its index).

    A write counts as arrived once its key shows it or a later write: an engine may collapse two
    writes of a key, and a change stream's post-image lookup may already find the later one.
    """

    def __init__(self) -> None:
        self.versions: dict[int, list[tuple[int, float]]] = {}

    def note(self, index: int, write: int, at: float) -> None:
        self.versions.setdefault(index, []).append((write, at))

    def arrival(self, index: int, write: int) -> float | None:
        return min((at for seen, at in self.versions.get(index, ()) if seen >= write), default=None)

    def all_in(self, written: dict[int, tuple[int, float]]) -> bool:
        return all(self.arrival(index, write) is not None for write, (index, _) in written.items())

    def latencies(self, written: dict[int, tuple[int, float]]) -> list[float]:
        return [self.arrival(index, write) - at for write, (index, at) in written.items()]


class MongoArrivals(Arrivals):
    """Arrivals in a collection, seen by a change stream as they happen."""

    name = "change-stream observer"

    def __init__(self, collection: Collection):
        super().__init__()
        self.collection = collection
        self.stop = threading.Event()
        self.start_at = Timestamp(int(time.time()), 0)

    def run(self) -> None:
        # mongo-java-server reports a replace as an update whose post-image only a lookup finds.
        with self.collection.watch(full_document="updateLookup", start_at_operation_time=self.start_at,
                                   max_await_time_ms=200) as stream:
            while not self.stop.is_set():
                change = stream.try_next()
                if change is None:
                    # mongo-java-server answers getMore at once instead of awaiting data: without a
                    # pause this thread would take a core from the engine it measures.
                    time.sleep(0.002)
                    continue
                document = change.get("fullDocument") or {}
                if "w" in document:
                    self.note(document["sk"], document["w"], time.time())


class StreamArrivals(Arrivals):
    """Arrivals in DynamoDB: the creation time of each write's stream record.

    moto stamps ApproximateCreationDateTime with millisecond precision when it makes the write, so
    the table's stream is read only once the writes are over, without competing with the engine.
    """

    def __init__(self, streams: Any, stream_arn: str):
        super().__init__()
        self.streams = streams
        # The emulator's streams have a single shard.
        shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
        self.iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard,
                                                   ShardIteratorType="TRIM_HORIZON")["ShardIterator"]

    def read(self) -> None:
        while True:
            page = self.streams.get_records(ShardIterator=self.iterator, Limit=1000)
            self.iterator = page["NextShardIterator"]
            for record in page["Records"]:
                image = record["dynamodb"].get("NewImage") or {}
                if "w" in image:
                    self.note(int(image["sk"]["N"]), int(image["w"]["N"]),
                              record["dynamodb"]["ApproximateCreationDateTime"].timestamp())
            if len(page["Records"]) < 1000:
                return

    def all_in(self, written: dict[int, tuple[int, float]]) -> bool:
        self.read()
        return super().all_in(written)


# ---- the baselines ------------------------------------------------------------------------------


class PlainForward:
    """GetRecords in a loop, each record written to MongoDB on its own: no checkpoints, no ledger."""

    name = "plain forward loop"

    def __init__(self, streams: Any, stream_arn: str, collection: Collection):
        self.streams = streams
        self.stream_arn = stream_arn
        self.collection = collection
        self.stop = threading.Event()
        self.records = 0

    def run(self) -> None:
        shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        iterators = [
            self.streams.get_shard_iterator(StreamArn=self.stream_arn, ShardId=shard["ShardId"],
                                            ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            for shard in shards
        ]
        while not self.stop.is_set():
            read = 0
            for position, iterator in enumerate(iterators):
                if iterator is None:
                    continue
                page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                iterators[position] = page["NextShardIterator"]
                for record in page["Records"]:
                    data = record["dynamodb"]
                    if record["eventName"] == "REMOVE":
                        self.collection.delete_one({"_id": item_to_document(data["Keys"], KEY_ATTRS)["_id"]})
                    else:
                        converted = item_to_document(data["NewImage"], KEY_ATTRS)
                        self.collection.replace_one({"_id": converted["_id"]}, converted, upsert=True)
                    self.records += 1
                read += len(page["Records"])
            if not read:
                self.stop.wait(POLL_SECONDS)


class PlainBackward:
    """A change stream in a loop, each event written to DynamoDB on its own: no ledger, no batching."""

    name = "plain backward loop"

    def __init__(self, dynamodb: Any, table: str, collection: Collection, start_at: Timestamp):
        self.dynamodb = dynamodb
        self.table = table
        self.collection = collection
        self.start_at = start_at
        self.stop = threading.Event()
        self.events = 0

    def run(self) -> None:
        with self.collection.watch(full_document="updateLookup", start_at_operation_time=self.start_at,
                                   max_await_time_ms=200) as stream:
            while not self.stop.is_set():
                change = stream.try_next()
                if change is None:
                    continue
                operation = change["operationType"]
                if operation in ("insert", "update", "replace") and change.get("fullDocument"):
                    self.dynamodb.put_item(TableName=self.table, Item=document_to_item(change["fullDocument"]))
                elif operation == "delete":
                    # A composite _id holds exactly the key attributes.
                    self.dynamodb.delete_item(TableName=self.table, Key=document_to_item(change["documentKey"]["_id"]))
                self.events += 1


# ---- the servers and what each measurement needs -------------------------------------------------


class Bench:
    def __init__(self, endpoint: str, mongo: MongoClient):
        self.endpoint = endpoint
        self.mongo = mongo
        run = uuid.uuid4().hex[:8]
        self.prefix = f"bench-{run}"
        self.database = mongo[f"d2m_bench_{run}"]
        self.metadata_database = f"d2m_bench_{run}_meta"
        self.dynamodb = self.client("dynamodb")
        self.streams = self.client("dynamodbstreams")
        self.created = 0

    def client(self, service: str) -> Any:
        """A client of its own for each thread, so no engine waits on another's connection pool."""
        return boto3.session.Session().client(service, endpoint_url=self.endpoint)

    def _name(self) -> str:
        self.created += 1
        return f"{self.prefix}-{self.created}"

    def table(self, stream: bool) -> tuple[str, str | None]:
        name = self._name()
        sample.create_table(self.dynamodb, name)
        return name, ensure_stream(self.dynamodb, name).stream_arn if stream else None

    def collection(self) -> Collection:
        return self.database[self._name()]

    def config(self, table: str, collection: Collection) -> TableConfig:
        (config,) = parse_config({"tables": [{
            "name": self._name(),
            "source_table": table,
            "database": collection.database.name,
            "collection": collection.name,
            "metadata_database": self.metadata_database,
            "export": {"s3_bucket": "unused-by-sync"},
        }]})
        return config

    def ready(self, config: TableConfig, phase: str, stream_arn: str | None) -> None:
        """The migration state a relay waits for, as the DAG leaves it (full load done, or caught up)."""
        StateStore(self.mongo[config.metadata_database], config.name).update_migration(
            phase=phase, stream={"arn": stream_arn}, source=describe_table(self.dynamodb, config.source_table).summary()
        )

    def drop(self) -> None:
        """Leave nothing behind in a MongoDB given by MONGO_URI."""
        self.mongo.drop_database(self.database.name)
        self.mongo.drop_database(self.metadata_database)


def forward_relay(bench: Bench, table: str, stream_arn: str, collection: Collection) -> Consumer:
    config = bench.config(table, collection)
    bench.ready(config, "full_load_done", stream_arn)
    stop = threading.Event()
    relay = ForwardRelay(config, bench.client("dynamodb"), bench.client("dynamodbstreams"), bench.mongo,
                         poll_seconds=POLL_SECONDS, stop=stop)
    return Consumer("forward relay", relay.run, stop, lambda: relay.totals.result.records,
                    lambda: relay.totals.result.counts())


def plain_forward(bench: Bench, table: str, stream_arn: str, collection: Collection) -> Consumer:
    loop = PlainForward(bench.client("dynamodbstreams"), stream_arn, collection)
    return Consumer(loop.name, loop.run, loop.stop, lambda: loop.records, lambda: {"records": loop.records})


def backward_relay(bench: Bench, table: str, collection: Collection, start_at: Timestamp) -> Consumer:
    config = bench.config(table, collection)
    bench.ready(config, "forward_caught_up", None)
    # What the relay records on its first start, dated back to when the baseline starts reading too.
    CheckpointStore(bench.mongo[config.metadata_database], config.name, "backward").save(
        POSITION, start_at=start_at, token=None
    )
    stop = threading.Event()
    relay = BackwardRelay(config, bench.client("dynamodb"), bench.mongo, poll_seconds=POLL_SECONDS, stop=stop)
    return Consumer("backward relay", relay.run, stop, lambda: relay.totals.events, lambda: relay.totals.counts())


def plain_backward(bench: Bench, table: str, collection: Collection, start_at: Timestamp) -> Consumer:
    loop = PlainBackward(bench.client("dynamodb"), table, collection, start_at)
    return Consumer(loop.name, loop.run, loop.stop, lambda: loop.events, lambda: {"events": loop.events})


# ---- the measurements ---------------------------------------------------------------------------


def forward_latency(bench: Bench, engine: Callable[..., Consumer], samples: int) -> list[float]:
    """Seconds from each put_item's return until its document shows in MongoDB's change stream."""
    table, stream_arn = bench.table(stream=True)
    collection = bench.collection()
    arrivals = MongoArrivals(collection)
    consumer = engine(bench, table, stream_arn, collection)
    warm_up = {-1: (WARM_UP_INDEX, 0.0)}
    written: dict[int, tuple[int, float]] = {}
    with Worker(arrivals) as observer, Worker(consumer) as worker:
        bench.dynamodb.put_item(TableName=table, Item=sample.item(WARM_UP_INDEX) | {"w": {"N": "-1"}})
        wait_until(lambda: arrivals.all_in(warm_up), [observer, worker], f"the {consumer.name}'s warm-up write")
        for write in paced(samples, WRITES_PER_SECOND):
            index = sample_index(write)
            bench.dynamodb.put_item(TableName=table, Item=sample.item(index) | {"w": {"N": str(write)}})
            written[write] = (index, time.time())
        wait_until(lambda: arrivals.all_in(written), [observer, worker],
                   f"every write of the {consumer.name} to reach MongoDB")
    return arrivals.latencies(written)


def backward_latency(bench: Bench, engine: Callable[..., Consumer], samples: int) -> list[float]:
    """Seconds from each MongoDB write's return until DynamoDB made the write."""
    table, stream_arn = bench.table(stream=True)
    collection = bench.collection()
    arrivals = StreamArrivals(bench.streams, stream_arn)
    consumer = engine(bench, table, collection, Timestamp(int(time.time()), 0))
    warm_up = {-1: (WARM_UP_INDEX, 0.0)}
    written: dict[int, tuple[int, float]] = {}
    with Worker(consumer) as worker:
        collection.insert_one(document(WARM_UP_INDEX, -1))
        wait_until(lambda: arrivals.all_in(warm_up), [worker], f"the {consumer.name}'s warm-up write", interval=0.1)
        for write in paced(samples, WRITES_PER_SECOND):
            index = sample_index(write)
            if index == write:
                collection.insert_one(document(index, write))
            else:
                collection.update_one({"_id": document_id(index)}, {"$set": {"w": write, "status": "mongo-paid"}})
            written[write] = (index, time.time())
        wait_until(lambda: arrivals.all_in(written), [worker], f"every write of the {consumer.name} to reach DynamoDB",
                   interval=0.25)
    return arrivals.latencies(written)


def _batch_write(dynamodb: Any, table: str, requests: list[dict[str, Any]]) -> None:
    for start in range(0, len(requests), BATCH_WRITE_LIMIT):
        pending = {table: requests[start : start + BATCH_WRITE_LIMIT]}
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def split(records: int) -> tuple[int, int, int]:
    """Inserts, modifies (of inserted keys) and removes (of other inserted keys) that make ``records``."""
    inserts = records * 6 // 10
    modifies = records * 3 // 10
    return inserts, modifies, records - inserts - modifies


def prewrite_stream(bench: Bench, records: int) -> tuple[str, str]:
    table, stream_arn = bench.table(stream=True)
    inserts, modifies, removes = split(records)
    _batch_write(bench.dynamodb, table, [{"PutRequest": {"Item": sample.item(i)}} for i in range(inserts)])
    _batch_write(bench.dynamodb, table,
                 [{"PutRequest": {"Item": sample.item(i) | {"w": {"N": "1"}}}} for i in range(modifies)])
    _batch_write(bench.dynamodb, table, [
        {"DeleteRequest": {"Key": {name: sample.item(i)[name] for name in KEY_ATTRS}}}
        for i in range(modifies, modifies + removes)
    ])
    return table, stream_arn


def prewrite_changes(bench: Bench, records: int) -> tuple[Collection, Timestamp]:
    collection = bench.collection()
    start_at = Timestamp(int(time.time()), 0)
    inserts, updates, deletes = split(records)
    collection.insert_many([document(i, 0) for i in range(inserts)])
    collection.bulk_write([UpdateOne({"_id": document_id(i)}, {"$set": {"w": 1, "status": "mongo-paid"}})
                           for i in range(updates)])
    collection.bulk_write([DeleteOne({"_id": document_id(i)}) for i in range(updates, updates + deletes)])
    return collection, start_at


def drain(consumer: Consumer, records: int) -> tuple[float, dict[str, int]]:
    """Records a second from the engine's start until it has applied ``records``."""
    started = time.perf_counter()
    with Worker(consumer) as worker:
        wait_until(lambda: consumer.applied() >= records, [worker], f"the {consumer.name} draining {records}",
                   timeout=DRAIN_TIMEOUT)
        elapsed = time.perf_counter() - started
    return records / elapsed, consumer.counts()


def forward_throughput(bench: Bench, engine: Callable[..., Consumer], records: int) -> tuple[float, dict[str, int]]:
    table, stream_arn = prewrite_stream(bench, records)
    return drain(engine(bench, table, stream_arn, bench.collection()), records)


def backward_throughput(bench: Bench, engine: Callable[..., Consumer], records: int) -> tuple[float, dict[str, int]]:
    collection, start_at = prewrite_changes(bench, records)
    table, _ = bench.table(stream=False)
    return drain(engine(bench, table, collection, start_at), records)


# ---- the report ---------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: a value that was measured, never an interpolation."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass
class Figure:
    name: str
    relay: float
    baseline: float


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
              if line.startswith("model name")] if cpuinfo.exists() else []
    model = models[0] if models else platform.processor() or "unknown CPU"
    return (f"{len(os.sched_getaffinity(0))} CPUs (nproc), {model}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def mongo_description() -> str:
    uri = os.environ.get("MONGO_URI")
    if uri:
        with MongoClient(uri, tz_aware=True) as mongo:
            return f"MongoDB {mongo.server_info().get('version')} from MONGO_URI"
    return (f"mongo-java-server {MONGO_JAVA_SERVER_VERSION} (in memory, oplog on), a fresh one for each "
            f"measurement")


def load() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def table(figures: list[Figure]) -> str:
    lines = [f"{'figure':<32}{'relay':>10}{'baseline':>10}{'relay/baseline':>16}"]
    for figure in figures:
        ratio = figure.relay / figure.baseline if figure.baseline else float("nan")
        lines.append(f"{figure.name:<32}{figure.relay:>10.0f}{figure.baseline:>10.0f}{ratio:>15.2f}x")
    return "\n".join(lines)


LIMITS = """\
What limits these figures:
- The emulator, not DynamoDB: the sandbox's moto server serves one request at a time (so that two
  writers of one key cannot leave a stream that disagrees with the table) and spends milliseconds of
  Python on each call; a GetRecords page costs it a few ms per record to serialize. Every DynamoDB
  call of the engine, the writer and the observer queues behind the others. DynamoDB serves requests
  in parallel and returns a GetRecords page in milliseconds.
- mongo-java-server answers a change stream's getMore at once instead of awaiting data, and each
  getMore scans the whole server-wide oplog, so its cost grows with every write since the server
  started (hence a fresh server per measurement; a shared one would favour whichever engine ran
  first). The backward engines spin on getMore while idle; a real MongoDB waits up to maxAwaitTimeMS.
- Forward latency includes the idle pause ({poll} s, both engines); on AWS a shard allows 5
  GetRecords a second, and the relay's default pause is 1 s.
- One Python process runs the engine, the writer and the observer on {cpus} cores that the two
  servers share too: the GIL and the servers' CPU time are part of every figure, and so is anything
  else running on the machine (see the load averages).""".format(poll=POLL_SECONDS, cpus=len(os.sched_getaffinity(0)))


@contextlib.contextmanager
def fresh_bench(endpoint: str) -> Iterator[Bench]:
    """A Bench on a MongoDB of its own (mongo-java-server), or on MONGO_URI when set."""
    with mongo_server() as uri, MongoClient(uri, tz_aware=True) as mongo:
        bench = Bench(endpoint, mongo)
        try:
            yield bench
        finally:
            bench.drop()


def measure(endpoint: str, measurement: Callable[..., Any], engine: Callable[..., Consumer], size: int) -> Any:
    with fresh_bench(endpoint) as bench:
        return measurement(bench, engine, size)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sync", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=2000, help="records per throughput drain (default 2000)")
    parser.add_argument("--latency-samples", type=int, default=300,
                        help=f"writes per latency run, at {WRITES_PER_SECOND:.0f}/s (default 300)")
    args = parser.parse_args(argv)
    if args.records < 10 or args.latency_samples < 20:
        parser.error("--records must be at least 10 and --latency-samples at least 20")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(threadName)s %(name)s: %(message)s")
    started = time.monotonic()
    load_before = load()
    servers = f"moto {moto.__version__} server (one request at a time); {mongo_description()}"
    figures: list[Figure] = []
    counts: list[str] = []
    with moto_server() as endpoint:
        os.environ.update(sandbox_env(endpoint))
        for direction, latency, throughput, engines, unit in (
            ("forward", forward_latency, forward_throughput, (forward_relay, plain_forward), "records/s"),
            ("backward", backward_latency, backward_throughput, (backward_relay, plain_backward), "events/s"),
        ):
            relay, baseline = (measure(endpoint, latency, engine, args.latency_samples) for engine in engines)
            for label, fraction in (("p50", 0.50), ("p99", 0.99)):
                figures.append(Figure(f"{direction} latency {label} (ms)", percentile(relay, fraction) * 1000,
                                      percentile(baseline, fraction) * 1000))
            (relay, relay_counts), (baseline, _) = (measure(endpoint, throughput, engine, args.records)
                                                    for engine in engines)
            figures.append(Figure(f"{direction} throughput ({unit})", relay, baseline))
            counts.append(f"{direction} relay drain: {relay_counts}")
    inserts, modifies, removes = split(args.records)
    print(f"""
dynamo2mongo sync benchmark: the relays beside a plain one-at-a-time loop, measured in the same run

machine : {machine()}
load    : {load_before} before, {load()} after (1 / 5 / 15 min averages)
servers : {servers}
latency : {args.latency_samples} writes per engine and direction at {WRITES_PER_SECOND:.0f}/s, one at a time
          (3 of 4 insert a new item, 1 of 4 changes an item written ~1 s before); idle poll {POLL_SECONDS} s
drains  : {args.records} records per engine and direction, written beforehand ({inserts} inserts,
          {modifies} modifies, {removes} removes); relay batch size 1000 forward, 500 backward
baseline: GetRecords / change stream in a loop, one replace_one / delete_one or put_item / delete_item
          per record, nothing else

{table(figures)}

{chr(10).join(counts)}
(latency: lower is better; throughput: higher is better)

{LIMITS}

total time: {time.monotonic() - started:.0f} s""")


if __name__ == "__main__":
    main()
