"""The index planner, on hand-made table descriptions (no server)."""

from __future__ import annotations

import json

import pytest

from dynamo2mongo.finish.indexes import IndexPlanError, PlannedIndex, plan_indexes
from dynamo2mongo.prepare.table import SecondaryIndex, TableDescription


def _table(key_attrs: tuple[str, ...], *indexes: SecondaryIndex) -> TableDescription:
    return TableDescription(
        name="Orders",
        arn="arn:aws:dynamodb:us-east-1:000000000000:table/Orders",
        status="ACTIVE",
        key_attrs=key_attrs,
        key_types={k: "S" for k in key_attrs},
        indexes=indexes,
        size_bytes=0,
        item_count=0,
        stream_arn=None,
        stream_view_type=None,
        stream_enabled=False,
        pitr_enabled=False,
    )


def _gsi(name: str, *key_attrs: str) -> SecondaryIndex:
    return SecondaryIndex(name=name, kind="GSI", key_attrs=key_attrs, projection="ALL")


def _lsi(name: str, *key_attrs: str) -> SecondaryIndex:
    return SecondaryIndex(name=name, kind="LSI", key_attrs=key_attrs, projection="KEYS_ONLY")


def _specs(plan: list[PlannedIndex]) -> dict[str, dict]:
    return {p.name: p.spec() for p in plan}


def test_hash_only_table_gets_one_unique_index():
    (primary,) = plan_indexes(_table(("id",)))
    assert primary.spec() == {"name": "d2m_pk", "key": [["id", 1]], "unique": True, "partialFilterExpression": None}


def test_composite_key_is_unique_on_hash_then_range():
    (primary,) = plan_indexes(_table(("pk", "sk")))
    assert primary.key == (("pk", 1), ("sk", 1))
    assert primary.unique and not primary.sparse_fields


def test_lsi_is_partial_on_its_sort_key_only():
    plan = plan_indexes(_table(("pk", "sk"), _lsi("by_status", "pk", "status")))
    assert _specs(plan)["d2m_by_status"] == {
        "name": "d2m_by_status",
        "key": [["pk", 1], ["status", 1]],
        "unique": False,
        # pk is in every document: a condition on it would filter nothing.
        "partialFilterExpression": {"status": {"$exists": True}},
    }


def test_gsi_on_other_attributes_is_partial_on_both():
    plan = plan_indexes(_table(("pk", "sk"), _gsi("by_customer", "customer_id", "created_at")))
    assert _specs(plan)["d2m_by_customer"] == {
        "name": "d2m_by_customer",
        "key": [["customer_id", 1], ["created_at", 1]],
        "unique": False,
        "partialFilterExpression": {"customer_id": {"$exists": True}, "created_at": {"$exists": True}},
    }


def test_hash_only_sparse_gsi():
    plan = plan_indexes(_table(("pk", "sk"), _gsi("by_sku", "sku")))
    assert _specs(plan)["d2m_by_sku"]["key"] == [["sku", 1]]
    assert _specs(plan)["d2m_by_sku"]["partialFilterExpression"] == {"sku": {"$exists": True}}


def test_gsi_on_the_table_key_attributes_holds_every_item():
    plan = plan_indexes(_table(("pk", "sk"), _gsi("inverted", "sk", "pk")))
    inverted = _specs(plan)["d2m_inverted"]
    assert inverted["key"] == [["sk", 1], ["pk", 1]]
    assert inverted["partialFilterExpression"] is None and inverted["unique"] is False


def test_esr_sort_field_goes_between_hash_and_range_and_stays_out_of_the_filter():
    table = _table(("pk", "sk"), _gsi("by_customer", "customer_id", "created_at"))
    (_, gsi) = plan_indexes(table, {"by_customer": "status"})
    assert gsi.spec()["key"] == [["customer_id", 1], ["status", 1], ["created_at", 1]]
    assert gsi.sparse_fields == ("customer_id", "created_at")


def test_esr_on_a_hash_only_index_appends_the_sort_field():
    (_, gsi) = plan_indexes(_table(("pk",), _gsi("by_sku", "sku")), {"by_sku": "created_at"})
    assert gsi.key == (("sku", 1), ("created_at", 1))


def test_esr_sort_field_equal_to_the_range_key_changes_nothing():
    table = _table(("pk", "sk"), _gsi("by_customer", "customer_id", "created_at"))
    assert plan_indexes(table, {"by_customer": "created_at"}) == plan_indexes(table)


def test_esr_on_an_unknown_index_names_the_known_ones():
    expected = r"'by_custmer', which the table does not have \(its indexes: by_customer\); fix the table configuration"
    with pytest.raises(IndexPlanError, match=expected):
        plan_indexes(_table(("pk",), _gsi("by_customer", "customer_id")), {"by_custmer": "created_at"})


def test_esr_sort_field_that_is_the_hash_key_is_refused():
    with pytest.raises(IndexPlanError, match="already its hash key"):
        plan_indexes(_table(("pk",), _gsi("by_customer", "customer_id")), {"by_customer": "customer_id"})


def test_names_that_need_encoding_are_stored_names_everywhere():
    table = _table(("_id", "a.b"), _gsi("by_ref", "$ref"), _lsi("by_dot", "_id", "x.y"))
    plan = _specs(plan_indexes(table, {"by_ref": "_ddb"}))
    assert plan["d2m_pk"]["key"] == [["%_id", 1], ["%a%2Eb", 1]]
    assert plan["d2m_by_ref"]["key"] == [["%%24ref", 1], ["%_ddb", 1]]
    assert plan["d2m_by_ref"]["partialFilterExpression"] == {"%%24ref": {"$exists": True}}
    assert plan["d2m_by_dot"]["key"] == [["%_id", 1], ["%x%2Ey", 1]]
    assert plan["d2m_by_dot"]["partialFilterExpression"] == {"%x%2Ey": {"$exists": True}}


def test_indexes_with_the_same_key_become_one():
    table = _table(
        ("pk", "sk"),
        _gsi("same_as_table", "pk", "sk"),
        _gsi("by_customer", "customer_id"),
        _gsi("by_customer_keys_only", "customer_id"),
    )
    plan = plan_indexes(table)
    assert [p.name for p in plan] == ["d2m_pk", "d2m_by_customer"]
    assert plan[0].serves == ("primary key", "GSI same_as_table") and plan[0].unique
    assert plan[1].serves == ("GSI by_customer", "GSI by_customer_keys_only")


def test_the_sample_table_plan_in_order_and_json_safe():
    table = _table(
        ("pk", "sk"),
        _lsi("by_status", "pk", "status"),
        _gsi("by_customer", "customer_id", "created_at"),
        _gsi("by_sku", "sku"),
    )
    plan = plan_indexes(table)
    assert [p.name for p in plan] == ["d2m_pk", "d2m_by_status", "d2m_by_customer", "d2m_by_sku"]
    specs = [p.spec() for p in plan]
    assert json.loads(json.dumps(specs)) == specs
    assert plan[2].describe() == (
        "d2m_by_customer (customer_id, created_at), partial: only documents with customer_id, created_at; "
        "for GSI by_customer"
    )
