"""Cut-over, rollback and finish against running relays: each refuses where it would lose data."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from dynamo2mongo.sync.checkpoints import read_heartbeat
from dynamo2mongo.operations.cutover import OperationRefused, Operations, relay_switches
from dynamo2mongo.sandbox import sample
from dynamo2mongo.sandbox.workload import MongoWorkload, Workload
from dynamo2mongo.state import StateStore
from dynamo2mongo.finish.verify import verify
from forward_helpers import create_source, full_load, relay_env, start_relay, table_config, wait_caught_up

pytestmark = pytest.mark.integration


def _status(meta, config, direction):
    return (read_heartbeat(meta, config.name, direction) or {}).get("status")


def _eventually(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_cut_over_then_rollback_loses_nothing(tmp_path, bucket, dynamodb, s3, mongo_client, mongo_uri, aws_env):
    config, path = table_config(tmp_path, bucket)
    stream = create_source(dynamodb, config, 200)
    full_load(dynamodb, s3, mongo_client, config, stream)
    meta = mongo_client[config.metadata_database]
    collection = mongo_client[config.database][config.collection]
    logs = {d: tmp_path / f"relay-{d}.log" for d in ("forward", "backward")}
    relays = {"forward": start_relay(path, config, relay_env(aws_env), mongo_uri, logs["forward"], "forward")}
    operations = Operations(
        meta,
        config.name,
        relay_switches(meta, config.name, "forward", stream),
        relay_switches(meta, config.name, "backward"),
        quiet_seconds=1,
        timeout_seconds=5,
        poll_seconds=0.2,
    )
    try:
        with pytest.raises(OperationRefused, match="phase"):
            operations.cut_over()
        Workload(dynamodb, config.source_table, existing=200, seed=4).run(threading.Event(), per_second=0, max_ops=200)
        wait_caught_up(mongo_client, config, stream, relay=relays["forward"], log_path=logs["forward"])
        StateStore(meta, config.name).update_migration(phase="forward_caught_up")
        with pytest.raises(OperationRefused, match="backward sync .* is not running"):
            operations.cut_over()
        with pytest.raises(OperationRefused, match="nothing to roll back"):
            operations.rollback()
        with pytest.raises(OperationRefused, match="cut over first"):
            operations.finish(collection, dynamodb, config.source_table)
        relays["backward"] = start_relay(path, config, relay_env(aws_env), mongo_uri, logs["backward"], "backward")
        _eventually(lambda: _status(meta, config, "backward") == "applying")
        operations.timeout_seconds = 60

        done = operations.cut_over()
        assert done["writer"] == "mongodb"
        assert _status(meta, config, "forward") == "paused"
        assert operations.cut_over()["already"]

        # The new application writes MongoDB; backward sync carries it to DynamoDB.
        app = MongoWorkload(collection, sample.KEY_ATTRS, existing=200, seed=8)
        writer, stop = app.start(per_second=100)
        time.sleep(1)
        with pytest.raises(OperationRefused, match="MongoDB was still written"):
            operations.rollback()
        stop.set()
        writer.join()
        done = operations.rollback()
        assert done["writer"] == "dynamodb" and done["forward_resumed"]
        _eventually(lambda: _status(meta, config, "forward") == "applying")
        assert _status(meta, config, "backward") == "paused"
        report = verify(dynamodb, config.source_table, sample.KEY_ATTRS, collection)
        assert report.differences == 0, report.describe()
        assert report.checked > 200

        # Forward sync resumed: the echoes of backward sync's writes come back and change nothing.
        before = read_heartbeat(meta, config.name, "forward")["counts"]
        wait_caught_up(mongo_client, config, stream, relay=relays["forward"], log_path=logs["forward"])
        after = read_heartbeat(meta, config.name, "forward")["counts"]
        assert after["echoes"] >= before["echoes"]
        assert verify(dynamodb, config.source_table, sample.KEY_ATTRS, collection).differences == 0

        # Cut over again, then finish: both directions stop, the stream goes only because we enabled it.
        operations.cut_over()
        facts = operations.finish(collection, dynamodb, config.source_table, disable_stream=True)
        assert facts["stream_disabled"]
        assert not dynamodb.describe_table(TableName=config.source_table)["Table"].get("StreamSpecification", {}).get(
            "StreamEnabled"
        )
        assert StateStore(meta, config.name).document()["phase"] == "finished"
        with pytest.raises(OperationRefused, match="finished"):
            operations.rollback()
    finally:
        for relay in relays.values():
            relay.send_signal(signal.SIGTERM)
            relay.wait(30)
