"""Filters that pin _id (served by the _id index on the sandbox server) match exactly as on MongoDB, and
$sample draws distinct documents every time; on whichever server the session runs."""

from __future__ import annotations

import time
import uuid

import pytest
from pymongo import ReplaceOne, UpdateOne

pytestmark = pytest.mark.integration


@pytest.fixture
def collection(mongo_client):
    collection = mongo_client["itest"][f"ids-{uuid.uuid4().hex[:8]}"]
    collection.insert_many([{"_id": n, "even": n % 2 == 0, "sub": {"n": n}} for n in range(50)])
    collection.insert_one({"_id": {"pk": "a", "sk": 1}, "even": False})
    return collection


def _ids(cursor) -> list:
    return sorted(d["_id"] for d in cursor if isinstance(d["_id"], int))


def test_pinned_filters_apply_the_rest_of_the_filter(collection):
    assert _ids(collection.find({"_id": 4, "even": True})) == [4]
    assert _ids(collection.find({"_id": 5, "even": True})) == []
    assert _ids(collection.find({"_id": 4.0})) == [4], "numbers are equal across types, as MongoDB compares them"
    assert _ids(collection.find({"_id": {"$eq": 6}, "sub.n": 6})) == [6]
    assert _ids(collection.find({"_id": {"$in": [1, 2, 3, 2, 99]}, "even": True})) == [2]
    assert _ids(collection.find({"_id": {"$in": [1, 2, 3], "$ne": 3}})) == [1, 2]
    assert _ids(collection.find({"$and": [{"_id": {"$in": [7, 8]}}, {"even": False}]})) == [7]
    assert _ids(collection.find({"_id": {"$gte": 48}})) == [48, 49]
    assert collection.find_one({"_id": {"pk": "a", "sk": 1}, "even": False}) is not None
    assert collection.count_documents({"_id": {"$in": [10, 11]}, "even": True}) == 1


def test_pinned_writes_touch_only_what_the_whole_filter_matches(collection):
    result = collection.bulk_write([
        UpdateOne({"_id": 10, "even": False}, {"$set": {"hit": True}}),
        UpdateOne({"_id": 11, "even": False}, {"$set": {"hit": True}}),
        ReplaceOne({"_id": 12, "sub.n": {"$ne": 12}}, {"replaced": True}),
    ])
    assert (result.matched_count, result.modified_count) == (1, 1)
    assert collection.find_one({"_id": 10}).get("hit") is None
    assert collection.find_one({"_id": 11})["hit"] is True
    assert collection.find_one({"_id": 12})["sub"] == {"n": 12}
    assert collection.delete_many({"_id": {"$in": [20, 21, 22]}, "even": True}).deleted_count == 2


def test_pinned_filters_do_not_scan_the_collection(mongo_client):
    """A guarded write on a large collection costs what it costs on a small one (a scan would be 100x)."""
    def guarded_writes(size: int) -> float:
        collection = mongo_client["itest"][f"scan-{uuid.uuid4().hex[:8]}"]
        collection.insert_many([{"_id": n, "_ddb": {"sync": {"seq": 1}}} for n in range(size)])
        started = time.perf_counter()
        collection.bulk_write([
            ReplaceOne({"_id": n, "_ddb.sync.seq": {"$not": {"$gte": 2}}}, {"_ddb": {"sync": {"seq": 2}}}, upsert=True)
            for n in range(0, size, size // 200)
        ])
        seconds = time.perf_counter() - started
        collection.drop()
        return seconds

    small, large = min(guarded_writes(500) for _ in range(2)), guarded_writes(50_000)
    assert large < max(10 * small, 0.5), (small, large)


def test_sample_draws_distinct_documents_every_time(collection):
    for _ in range(200):
        drawn = [d["_id"] for d in collection.aggregate([{"$sample": {"size": 20}}, {"$project": {"_id": 1}}])]
        assert len(drawn) == 20
        assert len({str(i) for i in drawn}) == 20
    assert len(list(collection.aggregate([{"$sample": {"size": 500}}]))) == 51
