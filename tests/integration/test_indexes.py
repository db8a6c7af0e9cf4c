"""Deferred indexes against the moto server and the test MongoDB: plan, build twice, conflicts, check."""

from __future__ import annotations

import uuid

import pytest

from dynamo2mongo.finish.indexes import (
    IndexBuildFailed,
    IndexConflict,
    build_indexes,
    check_indexes,
    plan_indexes,
)
from dynamo2mongo.sandbox import sample
from dynamo2mongo.prepare.table import describe_table
from dynamo2mongo.mapping import item_to_document

pytestmark = pytest.mark.integration
DATABASE = "itest_indexes"


@pytest.fixture(scope="module")
def sample_plan(dynamodb):
    name = f"idx-{uuid.uuid4().hex[:10]}"
    sample.create_table(dynamodb, name)
    return plan_indexes(describe_table(dynamodb, name), {"by_customer": "status"})


@pytest.fixture
def collection(mongo_client):
    collection = mongo_client[DATABASE][f"orders_{uuid.uuid4().hex[:10]}"]
    collection.insert_many([item_to_document(sample.item(i), sample.KEY_ATTRS) for i in range(40)])
    yield collection
    collection.drop()


def _indexes(collection) -> list[dict]:
    return sorted((dict(i) for i in collection.list_indexes()), key=lambda i: i["name"])


def test_the_sample_table_is_planned_from_describe_table(sample_plan):
    assert [p.spec() for p in sample_plan] == [
        {"name": "d2m_pk", "key": [["pk", 1], ["sk", 1]], "unique": True, "partialFilterExpression": None},
        {
            "name": "d2m_by_status",
            "key": [["pk", 1], ["status", 1]],
            "unique": False,
            "partialFilterExpression": {"status": {"$exists": True}},
        },
        {
            "name": "d2m_by_customer",
            "key": [["customer_id", 1], ["status", 1], ["created_at", 1]],
            "unique": False,
            "partialFilterExpression": {"customer_id": {"$exists": True}, "created_at": {"$exists": True}},
        },
        {
            "name": "d2m_by_sku",
            "key": [["sku", 1]],
            "unique": False,
            "partialFilterExpression": {"sku": {"$exists": True}},
        },
    ]


def test_building_twice_gives_the_same_indexes_and_matches_the_plan(collection, sample_plan):
    first = build_indexes(collection, sample_plan)
    after_first = _indexes(collection)
    second = build_indexes(collection, sample_plan)

    assert [o["outcome"] for o in first] == ["created"] * 4
    assert [o["outcome"] for o in second] == ["exists"] * 4
    assert _indexes(collection) == after_first
    assert check_indexes(collection, sample_plan) == []
    # Both servers keep the partial filter as given (mongo-java-server stores it but does not apply it).
    by_sku = next(i for i in after_first if i["name"] == "d2m_by_sku")
    assert by_sku["partialFilterExpression"] == {"sku": {"$exists": True}}


def test_an_index_of_that_name_with_another_key_is_a_clear_error(collection, sample_plan):
    collection.create_index([("customer_id", 1)], name="d2m_by_customer")
    with pytest.raises(IndexConflict) as raised:
        build_indexes(collection, sample_plan)
    message = str(raised.value)
    assert "index named 'd2m_by_customer' that differs from the plan" in message
    assert '"key": [["customer_id", 1]]' in message  # the existing one
    assert '"key": [["customer_id", 1], ["status", 1], ["created_at", 1]]' in message  # the planned one
    assert "dropIndex('d2m_by_customer')" in message
    assert [i["name"] for i in _indexes(collection)] == ["_id_", "d2m_by_customer"], "nothing built before the error"


def test_the_same_key_under_another_name_with_other_options_is_a_clear_error(collection, sample_plan):
    collection.create_index([("sku", 1)], name="sku_1")
    with pytest.raises(IndexConflict, match="index 'sku_1' on the key planned for 'd2m_by_sku' but with other options"):
        build_indexes(collection, sample_plan)


def test_an_equal_index_under_another_name_serves_the_plan(collection, sample_plan):
    collection.create_index([("sku", 1)], name="app_sku", partialFilterExpression={"sku": {"$exists": True}})
    outcomes = build_indexes(collection, sample_plan)
    assert outcomes[-1] == {"name": "d2m_by_sku", "outcome": "served by app_sku", "seconds": 0.0}
    assert check_indexes(collection, sample_plan) == []


def test_check_lists_missing_different_and_leftover_indexes(collection, sample_plan):
    build_indexes(collection, sample_plan)
    collection.drop_index("d2m_by_status")
    collection.drop_index("d2m_by_sku")
    collection.create_index([("sku", -1)], name="d2m_by_sku")
    collection.create_index([("gone", 1)], name="d2m_deleted_gsi")
    collection.create_index([("note", 1)], name="application_index")

    differences = check_indexes(collection, sample_plan)

    assert len(differences) == 3, differences
    assert differences[0].startswith("index 'd2m_by_status' is missing: planned {")
    assert differences[1].startswith("index 'd2m_by_sku' differs: existing {")
    assert differences[2].startswith("index 'd2m_deleted_gsi' is not in the plan")


def test_documents_sharing_a_key_stop_the_unique_index_with_advice(collection, sample_plan):
    twin = item_to_document(sample.item(3), sample.KEY_ATTRS)
    twin["_id"] = "written-by-an-application-with-another-convention"
    collection.insert_one(twin)
    with pytest.raises(IndexBuildFailed, match=r"unique index 'd2m_pk' on pk, sk of collection .* share one key"):
        build_indexes(collection, sample_plan)


def test_a_server_that_cannot_report_progress_builds_all_the_same(collection, sample_plan):
    # A cadence far below any build time makes the build ask the server for progress, which
    # mongo-java-server (no $currentOp) and an Atlas user without the inprog privilege refuse.
    outcomes = build_indexes(collection, sample_plan, progress_every=0.0001)
    assert [o["outcome"] for o in outcomes] == ["created"] * 4
    assert check_indexes(collection, sample_plan) == []
