import pytest

from dynamo2mongo.fullload.convert import output_key_for
from dynamo2mongo.fullload.reconcile import ReconcileFailed, check, reconcile

FILES = [("p/AWSDynamoDB/e1/data/a.json.gz", 10), ("p/AWSDynamoDB/e1/data/b.json.gz", 5)]


def results(**overrides):
    base = {
        "p/AWSDynamoDB/e1/data/a.json.gz": {"converted_items": 10, "imported_items": 10},
        "p/AWSDynamoDB/e1/data/b.json.gz": {"converted_items": 5, "imported_items": 5},
    }
    base.update(overrides)
    return base


def test_counts_that_add_up_pass():
    outcome = reconcile(15, FILES, results(), {}, collection_count=15)
    check(outcome, "t")
    assert outcome.summary()["imported"] == 15


def test_quarantined_records_explain_a_difference():
    res = results(**{"p/AWSDynamoDB/e1/data/b.json.gz": {"converted_items": 4, "imported_items": 4}})
    outcome = reconcile(15, FILES, res, {"p/AWSDynamoDB/e1/data/b.json.gz": 1}, collection_count=14)
    check(outcome, "t")
    assert outcome.summary()["quarantined"] == 1


def test_mismatch_lists_each_file():
    res = results(**{"p/AWSDynamoDB/e1/data/b.json.gz": {"converted_items": 5, "imported_items": 3}})
    del res["p/AWSDynamoDB/e1/data/a.json.gz"]
    outcome = reconcile(15, FILES, res, {}, collection_count=3)
    with pytest.raises(ReconcileFailed) as error:
        check(outcome, "orders")
    text = str(error.value)
    assert "a.json.gz: manifest 10, converted missing, quarantined 0, imported missing" in text
    assert "b.json.gz: manifest 5, converted 5, quarantined 0, imported 3" in text
    assert "the collection holds 3 documents" in text


def test_manifest_totals_must_agree():
    outcome = reconcile(16, FILES, results(), {}, collection_count=16)
    assert any("manifest-files.json lists 15 items" in d for d in outcome.differences)


@pytest.mark.parametrize(
    "data_key, expected",
    [
        ("pre/AWSDynamoDB/0170-ab/data/xyz.json.gz", "pre/AWSDynamoDB/0170-ab/mongo-extjson/xyz.jsonl.gz"),
        ("AWSDynamoDB/0170-ab/data/xyz.ion.gz", "AWSDynamoDB/0170-ab/mongo-extjson/xyz.jsonl.gz"),
    ],
)
def test_output_sits_next_to_the_export(data_key, expected):
    assert output_key_for(data_key) == expected
