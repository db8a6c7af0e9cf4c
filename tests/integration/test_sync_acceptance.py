"""Both sync directions at once: a random workload on overlapping keys from both sides, relays killed.

At quiescence both stores hold the same items (keys written on both sides inside the replication
window are conflicts: reported and resolved by the policy, so they converge too); every backward
write's echo was met exactly once; and nothing keeps moving (no loop).
"""

from __future__ import annotations

import signal
import time

import bson
import pytest

from dynamo2mongo.sync.checkpoints import CheckpointStore, now, read_heartbeat
from dynamo2mongo.sync.echo import CONFLICTS, ECHOES
from dynamo2mongo.sync.keystate import KEYS
from dynamo2mongo.sandbox import sample
from dynamo2mongo.sandbox.workload import MongoWorkload, Workload
from dynamo2mongo.state import StateStore
from dynamo2mongo.finish.verify import verify
from forward_helpers import create_source, full_load, relay_env, start_relay, table_config, wait_caught_up

pytestmark = pytest.mark.integration
OPERATIONS = 5000


def _restart(relays, direction, start):
    relays[direction].send_signal(signal.SIGKILL)
    relays[direction].wait()
    relays[direction] = start(direction)


def _wait_backward(meta, config, since, relay, timeout=120):
    deadline = time.monotonic() + timeout
    store = CheckpointStore(meta, config.name, "backward")
    while time.monotonic() < deadline:
        assert relay.poll() is None, "the backward relay exited"
        checkpoint = store.load().get("change_stream") or {}
        through = checkpoint.get("caught_up_at")
        if through is not None and through.replace(tzinfo=since.tzinfo) > since:
            return
        time.sleep(0.2)
    raise AssertionError("backward sync did not catch up")


def _dump(dynamodb, mongo_client, config, meta, report):
    import boto3
    streams = boto3.session.Session().client("dynamodbstreams", endpoint_url=dynamodb.meta.endpoint_url)
    arn = dynamodb.describe_table(TableName=config.source_table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = []
    while True:
        page = streams.get_records(ShardIterator=it, Limit=1000)
        records += page["Records"]
        it = page["NextShardIterator"]
        if not page["Records"]:
            break
    from dynamo2mongo.mapping.canonical import content_hash
    for kind in ("extra", "different", "missing"):
        for key in report.examples[kind][:2]:
            print(f"\n==== {kind} {key}")
            for r in records:
                if r["dynamodb"]["Keys"]["sk"]["N"] == str(key["sk"]):
                    img = r["dynamodb"].get("NewImage") or {}
                    print(" stream", r["dynamodb"]["SequenceNumber"][-5:], r["eventName"], content_hash(img) if img else "-",
                          img.get("status"), img.get("app_version"), r["dynamodb"]["ApproximateCreationDateTime"].time())
            for c in meta[CONFLICTS].find({"key": key}):
                print(" conflict", c["resolution"], c["detail"], c["at"].time(), (c.get("dynamodb") or {}).get("status"), (c.get("mongodb") or {}).get("status"))
            for e in meta[ECHOES].find({"_id.k": key}):
                print(" ledger", e)
            print(" mongo", mongo_client[config.database][config.collection].find_one({"_id": key}))
            print(" keys", meta[KEYS].find_one({"_id.k": key}))
            with mongo_client[config.database][config.collection].watch(
                    [{"$match": {"documentKey._id": key}}], start_at_operation_time=bson.Timestamp(1, 0),
                    full_document="updateLookup") as cs:
                while (ev := cs.try_next()) is not None:
                    doc = ev.get("fullDocument") or {}
                    print(" event", ev["operationType"], ev.get("clusterTime"), ev.get("wallTime"), doc.get("status"),
                          doc.get("app_version"), ((doc.get("_ddb") or {}).get("sync") or {}),
                          (ev.get("updateDescription") or {}).get("updatedFields"))


def _counts(meta, config):
    return tuple(
        (read_heartbeat(meta, config.name, d) or {}).get("counts", {}).get(k)
        for d, k in (("forward", "written"), ("forward", "deleted"), ("backward", "written"), ("backward", "deleted"))
    )


def test_both_directions_converge_with_relays_killed(tmp_path, bucket, dynamodb, s3, mongo_client, mongo_uri, aws_env):
    config, path = table_config(tmp_path, bucket)
    stream = create_source(dynamodb, config, 400)
    full_load(dynamodb, s3, mongo_client, config, stream)
    meta = mongo_client[config.metadata_database]
    logs = {d: tmp_path / f"relay-{d}.log" for d in ("forward", "backward")}

    def start(direction):
        return start_relay(path, config, relay_env(aws_env), mongo_uri, logs[direction], direction)

    relays = {"forward": start("forward")}
    try:
        wait_caught_up(mongo_client, config, stream, relay=relays["forward"], log_path=logs["forward"])
        StateStore(meta, config.name).update_migration(phase="forward_caught_up")
        relays["backward"] = start("backward")
        while (read_heartbeat(meta, config.name, "backward") or {}).get("status") != "applying":
            time.sleep(0.1)

        dynamo_side = Workload(dynamodb, config.source_table, existing=400, seed=21)
        mongo_side = MongoWorkload(mongo_client[config.database][config.collection], sample.KEY_ATTRS, 400, seed=22)
        # The emulator serves DynamoDB one request at a time, so its side gets the smaller share.
        writers = [dynamo_side.start(per_second=0, max_ops=OPERATIONS * 3 // 10),
                   mongo_side.start(per_second=0, max_ops=OPERATIONS * 7 // 10)]
        kills = {1000: "forward", 2000: "backward", 3000: "forward", 4000: "backward"}
        while (done := sum(dynamo_side.ops.values()) + sum(mongo_side.ops.values())) < OPERATIONS:
            for threshold in [t for t in kills if done >= t]:
                _restart(relays, kills.pop(threshold), start)
            for direction, relay in relays.items():
                assert relay.poll() is None, logs[direction].read_text()[-3000:]
            time.sleep(0.05)
        for thread, stop in writers:
            stop.set()
            thread.join()

        # Quiescence: each direction's writes echo into the other, so wait until nothing moves.
        stable, previous = 0, None
        while stable < 3:
            since = now()
            wait_caught_up(mongo_client, config, stream, relay=relays["forward"], log_path=logs["forward"])
            _wait_backward(meta, config, since, relays["backward"])
            counts = _counts(meta, config)
            stable = stable + 1 if counts == previous else 0
            previous = counts
            time.sleep(1)
    finally:
        for relay in relays.values():
            relay.send_signal(signal.SIGTERM)
            relay.wait(30)

    assert sum(dynamo_side.ops.values()) + sum(mongo_side.ops.values()) >= OPERATIONS
    assert {"insert", "update", "delete", "recreate"} <= set(dynamo_side.ops) & set(mongo_side.ops)
    conflicts = list(meta[CONFLICTS].find({"table": config.name}))
    report = verify(dynamodb, config.source_table, sample.KEY_ATTRS, mongo_client[config.database][config.collection])
    if report.differences:
        _dump(dynamodb, mongo_client, config, meta, report)
    assert report.differences == 0, report.describe() + f"\n{len(conflicts)} conflicts reported"
    assert all(c["policy"] == "dynamodb_wins" and c["resolution"] in ("dynamodb", "mongodb") for c in conflicts)
    both_sides = dynamo_side.touched & mongo_side.touched
    stray = [c for c in conflicts if c["key"]["sk"] not in both_sides]
    assert not stray, "conflicts reported for keys only one side wrote: " + "; ".join(
        f"{c['key']} {c['resolution']} {c['detail']}" for c in stray[:5]
    )
    # A write noted as made must have come back exactly once. Intents a killed relay left behind
    # (its replay wrote the document's newer content instead) never reached DynamoDB. A hash whose
    # writes all came back keeps an empty map of tokens.
    unmet = [e for e in meta[ECHOES].find({"_id.t": config.name}) if any((e.get("w") or {}).values())]
    assert not unmet, f"{len(unmet)} writes whose echo never came back, e.g. {unmet[:3]}"
    forward = read_heartbeat(meta, config.name, "forward")["counts"]
    backward = read_heartbeat(meta, config.name, "backward")["counts"]
    print(f"\nops: dynamodb {dict(dynamo_side.ops)}, mongodb {dict(mongo_side.ops)}; forward {forward}; "
          f"backward {backward}; conflicts {len(conflicts)}")
