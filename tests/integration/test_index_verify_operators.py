"""CreateIndexesOperator and VerifyOperator run as Airflow runs them, against the test servers."""

from __future__ import annotations

import json
import uuid

import pytest

from dynamo2mongo.config import load_configuration
from dynamo2mongo.sandbox import sample
from dynamo2mongo.state import StateStore
from dynamo2mongo.mapping import item_to_document
from dynamo2mongo.finish.verify import VERIFICATIONS, latest_report

pytestmark = pytest.mark.integration
DATABASE = "operators_itest"
META = "operators_itest_meta"
ITEMS = 60


@pytest.fixture
def table(dynamodb, mongo_client, airflow_tables):
    """A seeded sample table, its collection loaded as the import would, and the Airflow connections."""
    name = f"ops-{uuid.uuid4().hex[:10]}"
    sample.create_table(dynamodb, name)
    sample.seed(lambda: dynamodb, name, ITEMS, workers=1)
    collection = mongo_client[DATABASE][name]
    collection.insert_many([item_to_document(sample.item(i), sample.KEY_ATTRS) for i in range(ITEMS)])
    airflow_tables(name, DATABASE, META, indexes={"esr_sort_fields": {"by_customer": "status"}})
    yield name, collection
    collection.drop()


def test_create_indexes_twice_builds_once_and_records_the_plan(table, mongo_client):
    from dynamo2mongo_airflow.indexes import CreateIndexesOperator

    name, collection = table
    operator = CreateIndexesOperator(task_id="create_indexes", table=load_configuration().table(name))
    first = operator.execute({"params": {}, "run_id": "manual__1"})
    indexes = list(collection.list_indexes())
    second = operator.execute({"params": {}, "run_id": "manual__1"})

    assert first == second
    assert json.loads(json.dumps(first)) == first, "the plan in XCom is JSON"
    assert [i["name"] for i in first] == ["d2m_pk", "d2m_by_status", "d2m_by_customer", "d2m_by_sku"]
    assert list(collection.list_indexes()) == indexes
    recorded = StateStore(mongo_client[META], name).document()["indexes"]
    assert recorded["differences"] == []
    assert [o["outcome"] for o in recorded["outcomes"]] == ["exists"] * 4
    assert recorded["plan"][2]["key"] == [["customer_id", 1], ["status", 1], ["created_at", 1]]
    assert recorded["plan"][2]["partial_on"] == ["customer_id", "created_at"]


def test_create_indexes_fails_on_an_index_in_the_way_and_records_why(table, mongo_client):
    from airflow.sdk.exceptions import AirflowFailException
    from dynamo2mongo_airflow.indexes import CreateIndexesOperator

    name, collection = table
    collection.create_index([("sku", 1)], name="d2m_by_sku")
    operator = CreateIndexesOperator(task_id="create_indexes", table=load_configuration().table(name))
    with pytest.raises(AirflowFailException, match=r"indexes of ops-\w+: .*'d2m_by_sku' that differs from the plan"):
        operator.execute({"params": {}, "run_id": "manual__1"})
    assert "dropIndex('d2m_by_sku')" in StateStore(mongo_client[META], name).document()["indexes"]["error"]


def test_verify_passes_stores_one_report_per_run_and_fails_beyond_the_tolerance(table, mongo_client):
    from airflow.sdk.exceptions import AirflowFailException
    from dynamo2mongo_airflow.verify import VerifyOperator

    name, collection = table
    meta = mongo_client[META]
    verify = VerifyOperator(task_id="verify", table=load_configuration().table(name))
    summary = verify.execute({"params": {}, "run_id": "manual__1"})
    verify.execute({"params": {}, "run_id": "manual__1"})  # a retry of the same run

    assert summary["checked"] == ITEMS and summary["differences"] == 0 and summary["mode"] == "full"
    assert "examples" not in summary and json.loads(json.dumps(summary)) == summary
    assert meta[VERIFICATIONS].count_documents({"table": name}) == 1

    collection.update_one({"_id": {"pk": "tenant#0003", "sk": 3}}, {"$set": {"status": "lost"}})
    with pytest.raises(AirflowFailException) as raised:
        verify.execute({"params": {}, "run_id": "manual__2"})
    message = str(raised.value)
    assert "found 1 difference(s), more than the tolerance of 0" in message
    assert "1 different" in message and "tenant#0003" in message
    latest = latest_report(meta, name)
    assert latest["_id"] == {"table": name, "run_id": "manual__2"}
    assert latest["different"] == 1 and json.loads(latest["field_diff"])["fields"]["status"]["mongodb"] == {"S": "lost"}

    lenient = VerifyOperator(task_id="verify", table=load_configuration().table(name), tolerance=1, sample_fraction=0.5)
    assert lenient.execute({"params": {}, "run_id": "manual__3"})["mode"] == "sampled 50%"
    assert meta[VERIFICATIONS].count_documents({"table": name}) == 3


def test_verify_arguments_are_checked_when_the_dag_is_parsed():
    from dynamo2mongo_airflow.verify import VerifyOperator

    with pytest.raises(ValueError, match="sample_fraction must be above 0 and at most 1, got 0"):
        VerifyOperator(task_id="verify", table="t", sample_fraction=0)
