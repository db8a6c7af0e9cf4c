"""Each conflict policy on a key written on both sides inside the replication window, step by step."""

from __future__ import annotations

import time

import pytest

from dynamo2mongo.sync.echo import CONFLICTS
from dynamo2mongo.sync.relay.backward import BackwardRelay
from dynamo2mongo.sync.relay.forward import ForwardRelay
from dynamo2mongo.sandbox import sample
from dynamo2mongo.state import StateStore
from dynamo2mongo.finish.verify import verify
from forward_helpers import create_source, full_load, table_config

pytestmark = pytest.mark.integration
KEY = {"pk": sample.item(3)["pk"], "sk": sample.item(3)["sk"]}
DOCUMENT_ID = {"pk": sample.item(3)["pk"]["S"], "sk": 3}


def _drain_forward(relay):
    while relay.step():
        pass


def _drain_backward(relay, stream):
    changes = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        change = stream.try_next()
        if change is None and changes:
            break
        if change is not None:
            changes.append(change)
    if changes:
        relay._apply(changes)


def _status(dynamodb, config, collection):
    item = dynamodb.get_item(TableName=config.source_table, Key=KEY, ConsistentRead=True)["Item"]
    return item["status"]["S"], collection.find_one({"_id": DOCUMENT_ID})["status"]


@pytest.mark.parametrize(
    "policy, mongodb_first, winner",
    [
        ("dynamodb_wins", True, "dynamodb"),
        ("dynamodb_wins", False, "dynamodb"),
        ("mongodb_wins", True, "mongodb"),
        ("mongodb_wins", False, "mongodb"),
        ("latest_wins", True, "dynamodb"),
        ("latest_wins", False, "mongodb"),
    ],
)
def test_a_key_written_on_both_sides_converges_to_the_policy_winner(
    tmp_path, bucket, dynamodb, dynamodbstreams, s3, mongo_client, policy, mongodb_first, winner
):
    config, _ = table_config(tmp_path, bucket, conflict_policy=policy)
    stream_arn = create_source(dynamodb, config, 10)
    full_load(dynamodb, s3, mongo_client, config, stream_arn)
    meta = mongo_client[config.metadata_database]
    collection = mongo_client[config.database][config.collection]
    forward = ForwardRelay(config, dynamodb, dynamodbstreams, mongo_client, poll_seconds=0.05)
    assert forward.wait_until_ready()
    _drain_forward(forward)
    StateStore(meta, config.name).update_migration(phase="forward_caught_up")
    backward = BackwardRelay(config, dynamodb, mongo_client)
    assert backward.wait_until_ready()
    backward.key_attrs = sample.KEY_ATTRS

    with collection.watch(full_document="updateLookup", max_await_time_ms=200, **backward._stream_options()) as stream:
        # Both sides change the key before either sync has carried the other's change.
        def write_mongodb():
            collection.update_one({"_id": DOCUMENT_ID}, {"$set": {"status": "from-mongodb"}})

        def write_dynamodb():
            dynamodb.update_item(TableName=config.source_table, Key=KEY, UpdateExpression="SET #s = :s",
                                 ExpressionAttributeNames={"#s": "status"},
                                 ExpressionAttributeValues={":s": {"S": "from-dynamodb"}})

        first, second = (write_mongodb, write_dynamodb) if mongodb_first else (write_dynamodb, write_mongodb)
        first()
        time.sleep(1.1)  # change times a second apart: latest_wins must see which came last
        second()
        if mongodb_first:
            # Forward sync meets the DynamoDB change first, then backward sync the MongoDB one.
            _drain_forward(forward)
            _drain_backward(backward, stream)
        else:
            _drain_backward(backward, stream)
            _drain_forward(forward)
        for _ in range(3):
            _drain_forward(forward)
            _drain_backward(backward, stream)

    expected = f"from-{winner}"
    assert _status(dynamodb, config, collection) == (expected, expected)
    assert verify(dynamodb, config.source_table, sample.KEY_ATTRS, collection).differences == 0
    conflicts = list(meta[CONFLICTS].find({"table": config.name}))
    assert conflicts and {c["resolution"] for c in conflicts} == {winner}, conflicts
    assert all(c["key"] == DOCUMENT_ID and c["policy"] == policy for c in conflicts)
