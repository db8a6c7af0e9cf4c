"""`dynamo2mongo quarantine retry`: once the data (or the configuration) is fixed, a quarantined key
syncs its current state through the relays' guards, and its entry goes.

Through the checker's runner, so the relays are the real ones on the real servers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import bson
import pytest

from dynamo2mongo.sync.quarantine import Quarantine
from dynamo2mongo.sync.requeue import retry
from dynamo2mongo.mapping import item_to_document
from tests.model.history import History
from tests.model.runner import KEY, Runner

pytestmark = pytest.mark.integration

ITEM = {"pk": {"S": "p0"}, "sk": {"N": "0"}, "status": {"S": "active"}, "tags": {"SS": ["a", "b"]}}


@pytest.fixture
def runner(model_env):
    running = Runner(model_env, History(0, [("p0", 0), ("p1", 1)], {}, [], batch_size=10, policy="dynamodb_wins"))
    running.setup()
    yield running
    running.cleanup()


def _quarantined(runner: Runner, direction: str) -> list[dict]:
    return Quarantine(runner.meta, runner.config.name).entries(direction)


def test_a_forward_change_blocked_by_a_stray_document_syncs_once_the_stray_is_gone(runner):
    stray = {"_id": bson.ObjectId(), "pk": "p0", "sk": 0, "status": "stray"}
    runner.collection.insert_one(stray)
    runner.env.dynamodb.put_item(TableName=runner.source_table, Item=ITEM)
    runner.sync_point()
    (entry,) = _quarantined(runner, "forward")
    assert entry["key"] == {"pk": "p0", "sk": 0} and "document_id" in entry["reason"]
    assert runner.collection.find_one({"_id": {"pk": "p0", "sk": 0}}) is None

    runner.collection.delete_one({"_id": stray["_id"]})
    result = retry(runner.config, KEY, runner.env.dynamodb, runner.env.mongo)

    # The stray itself was quarantined on its way to DynamoDB; gone now, its entry resolves too.
    assert (result.retried, result.synced, result.still_quarantined) == (2, 2, 0)
    assert _quarantined(runner, "forward") == [] and _quarantined(runner, "backward") == []
    synced = runner.collection.find_one({"_id": {"pk": "p0", "sk": 0}})
    assert synced["status"] == "active" and sorted(synced["tags"]) == ["a", "b"]
    runner.sync_point()
    assert runner.outcome.unsettled == [], "the retried key's write is met as forward sync's own"


def test_a_backward_change_refused_by_the_mapping_syncs_once_the_mapping_allows_it(runner):
    runner.config = dataclasses.replace(runner.config, sync=dataclasses.replace(runner.config.sync, bson_dates="reject"))
    runner.build("backward")
    document = item_to_document(ITEM, KEY)
    document["paid_at"] = dt.datetime(2026, 12, 4, 12, 30, 0, 123000)
    runner.collection.insert_one(document)
    runner.sync_point()
    (entry,) = _quarantined(runner, "backward")
    assert "paid_at" in entry["reason"]
    assert "Item" not in runner.env.dynamodb.get_item(TableName=runner.source_table, Key={"pk": {"S": "p0"}, "sk": {"N": "0"}})

    allowed = dataclasses.replace(runner.config, sync=dataclasses.replace(runner.config.sync, bson_dates="iso8601"))
    result = retry(allowed, KEY, runner.env.dynamodb, runner.env.mongo)

    assert (result.synced, result.still_quarantined) == (1, 0)
    item = runner.env.dynamodb.get_item(TableName=runner.source_table, Key={"pk": {"S": "p0"}, "sk": {"N": "0"}},
                                        ConsistentRead=True)["Item"]
    assert item["paid_at"] == {"S": "2026-12-04T12:30:00.123Z"} and item["tags"] == {"SS": ["a", "b"]}


def test_a_change_still_unwritable_stays_quarantined_with_its_reason(runner):
    document = item_to_document(ITEM, KEY)
    document["ratio"] = float("nan")
    runner.collection.insert_one(document)
    runner.sync_point()
    result = retry(runner.config, KEY, runner.env.dynamodb, runner.env.mongo)
    assert (result.retried, result.synced, result.still_quarantined) == (1, 0, 1)
    (entry,) = _quarantined(runner, "backward")
    assert "ratio" in entry["reason"]
