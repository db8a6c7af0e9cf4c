"""Forward sync end to end: live writes during the full load, SIGKILL mid-stream, replays and duplicates."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from bson import json_util

from dynamo2mongo.sync.keystate import KeyStates
from dynamo2mongo.sync import forward
from dynamo2mongo.sync import records
from dynamo2mongo.sync.checkpoints import CheckpointStore, read_heartbeat
from dynamo2mongo.sync.relay.forward import ForwardRelay
from dynamo2mongo.sandbox import sample
from dynamo2mongo.sandbox.workload import Workload
from dynamo2mongo.finish.verify import verify
from forward_helpers import create_source, full_load, relay_env, start_relay, table_config, wait_caught_up

pytestmark = pytest.mark.integration


def _snapshot(collection) -> list[str]:
    return sorted(json_util.dumps(d, sort_keys=True) for d in collection.find())


def _assert_same(dynamodb, config, mongo_client):
    report = verify(dynamodb, config.source_table, sample.KEY_ATTRS, mongo_client[config.database][config.collection])
    assert report.differences == 0, report.describe()
    return report


def test_live_writes_during_the_full_load_converge(tmp_path, bucket, dynamodb, s3, mongo_client, mongo_uri, aws_env):
    config, path = table_config(tmp_path, bucket)
    stream = create_source(dynamodb, config, 400)
    workload = Workload(dynamodb, config.source_table, existing=400, seed=11)
    writer, stop_writing = workload.start(per_second=150)
    full_load(dynamodb, s3, mongo_client, config, stream)
    log = tmp_path / "relay.log"
    relay = start_relay(path, config, relay_env(aws_env), mongo_uri, log)
    try:
        time.sleep(2)
        stop_writing.set()
        writer.join()
        assert {"insert", "update", "delete", "recreate"} <= set(workload.ops), workload.ops
        wait_caught_up(mongo_client, config, stream, relay=relay, log_path=log)
        report = _assert_same(dynamodb, config, mongo_client)
        assert report.checked == len(workload.live)
    finally:
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(30) == 0, log.read_text()[-3000:]
    beat = read_heartbeat(mongo_client[config.metadata_database], config.name, "forward")
    assert beat["status"] == "stopped" and beat["counts"]["written"] > 0
    marked = mongo_client[config.database][config.collection].find_one({"_ddb.sync.src": "dynamodb"})
    assert marked["_ddb"]["sync"]["h"] and len(marked["_ddb"]["sync"]["seq"]) == records.SEQ_WIDTH


def test_relay_killed_mid_stream_resumes_without_loss(tmp_path, bucket, dynamodb, s3, mongo_client, mongo_uri, aws_env):
    config, path = table_config(tmp_path, bucket, batch_size=25)
    stream = create_source(dynamodb, config, 100)
    full_load(dynamodb, s3, mongo_client, config, stream)
    Workload(dynamodb, config.source_table, existing=100, seed=5).run(threading.Event(), per_second=0, max_ops=1500)
    meta = mongo_client[config.metadata_database]
    checkpoints = CheckpointStore(meta, config.name, "forward")
    log = tmp_path / "relay.log"
    positions = []
    for _ in range(3):
        relay = start_relay(path, config, relay_env(aws_env), mongo_uri, log)
        deadline = time.monotonic() + 60
        before = max((c.get("seq") or "" for c in checkpoints.load().values()), default="")
        while max((c.get("seq") or "" for c in checkpoints.load().values()), default="") <= before:
            assert relay.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the relay made no progress"
            time.sleep(0.02)
        relay.send_signal(signal.SIGKILL)
        relay.wait()
        positions.append(max(c["seq"] for c in checkpoints.load().values()))
    assert positions == sorted(positions), "a restarted relay must never move its checkpoint backwards"
    relay = start_relay(path, config, relay_env(aws_env), mongo_uri, log)
    try:
        wait_caught_up(mongo_client, config, stream, relay=relay, log_path=log)
        _assert_same(dynamodb, config, mongo_client)
    finally:
        relay.send_signal(signal.SIGTERM)
        relay.wait(30)


def test_replay_from_trim_horizon_and_duplicate_delivery_change_nothing(
    tmp_path, bucket, dynamodb, dynamodbstreams, s3, mongo_client
):
    config, _ = table_config(tmp_path, bucket, batch_size=40)
    stream = create_source(dynamodb, config, 50)
    full_load(dynamodb, s3, mongo_client, config, stream)
    Workload(dynamodb, config.source_table, existing=50, seed=9).run(threading.Event(), per_second=0, max_ops=300)
    collection = mongo_client[config.database][config.collection]

    def drain() -> ForwardRelay:
        relay = ForwardRelay(config, dynamodb, dynamodbstreams, mongo_client, poll_seconds=0.05)
        assert relay.wait_until_ready()
        while relay.step():
            pass
        return relay

    first = drain()
    assert first.totals.result.written > 0
    _assert_same(dynamodb, config, mongo_client)
    synced = _snapshot(collection)

    CheckpointStore(mongo_client[config.metadata_database], config.name, "forward").clear()
    replay = drain()
    assert replay.totals.result.records == first.totals.result.records
    assert (replay.totals.result.written, replay.totals.result.deleted) == (0, 0), replay.totals.result.counts()
    assert _snapshot(collection) == synced

    shard = dynamodbstreams.describe_stream(StreamArn=stream)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = dynamodbstreams.get_shard_iterator(StreamArn=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = dynamodbstreams.get_records(ShardIterator=iterator["ShardIterator"], Limit=1000)["Records"]
    keys = KeyStates(mongo_client[config.metadata_database], config.name)
    for batch in (records, records[::-1], records[len(records) // 2 :] + records):
        result = forward.apply_records(batch, collection, keys, config.name, sample.KEY_ATTRS)
        assert result.written == 0 and result.deleted == 0, result.counts()
    assert _snapshot(collection) == synced
