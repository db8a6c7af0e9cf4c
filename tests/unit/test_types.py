"""The DESIGN §4 mapping: item -> MongoDB -> item is identical, or the item is refused with a reason."""

from __future__ import annotations

import decimal

import bson
import pytest
from bson import Decimal128, Int64
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynamo2mongo.canonical import canonical_item
from dynamo2mongo.keys import MissingKeyField, document_id
from dynamo2mongo.types import Unrepresentable, document_to_item, item_to_document

from .strategies import items_with_keys, numbers

settings.register_profile("d2m", max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile("d2m")


@given(items_with_keys())
def test_round_trip_is_identical(case):
    item, keys = case
    document = item_to_document(item, keys)
    assert canonical_item(document_to_item(document)) == canonical_item(item)


@given(items_with_keys())
def test_documents_are_storable_bson_and_survive_it(case):
    item, keys = case
    stored = bson.decode(bson.encode(item_to_document(item, keys)))
    assert canonical_item(document_to_item(stored)) == canonical_item(item)
    assert list(stored)[0] == "_id"


@given(items_with_keys())
def test_double_when_exact_mapping_is_also_lossless(case):
    item, keys = case
    stored = bson.decode(bson.encode(item_to_document(item, keys, "double_when_exact")))
    assert canonical_item(document_to_item(stored)) == canonical_item(item)


@given(items_with_keys())
def test_id_is_the_key_fields(case):
    item, keys = case
    document = item_to_document(item, keys)
    assert document["_id"] == document_id(document, keys)


@given(numbers())
def test_numbers_map_to_the_narrowest_exact_type(text):
    value = item_to_document({"k": {"N": text}}, ("k",))["k"]
    number = decimal.Context(prec=60).create_decimal(text)
    if number == number.to_integral_value() and -(2**63) <= number < 2**63:
        assert isinstance(value, int) and value == number
    elif len(number.normalize(decimal.Context(prec=60)).as_tuple().digits) <= 34:
        assert isinstance(value, Decimal128) and value.to_decimal() == number
    else:
        assert isinstance(value, str) and decimal.Decimal(value) == number


@pytest.mark.parametrize("spellings", [("1.5", "1.50", "15E-1", "0.15e1"), ("100", "1E+2", "100.000"), ("-0", "0", "0.00")])
def test_same_number_in_any_spelling_is_the_same_bson_value_and_id(spellings):
    documents = [item_to_document({"k": {"N": s}, "v": {"N": s}}, ("k",)) for s in spellings]
    assert len({bson.encode(d) for d in documents}) == 1


def test_38_digit_numbers_keep_every_digit_through_a_string_hint():
    text = "12345678901234567890123456789012345678"
    document = item_to_document({"k": {"S": "a"}, "n": {"N": text}, "ns": {"NS": [text, "1"]}}, ("k",))
    assert document["n"] == text
    assert {"p": ["n"], "t": "N"} in document["_ddb"]["t"]
    assert document_to_item(document)["n"] == {"N": text}
    assert document_to_item(document)["ns"] == {"NS": [text, "1"]}


def test_hints_address_nested_sets_by_path():
    item = {"k": {"S": "a"}, "m": {"M": {"l": {"L": [{"S": "x"}, {"SS": ["a", "b"]}]}}}}
    document = item_to_document(item, ("k",))
    assert document["m"] == {"l": ["x", ["a", "b"]]}
    assert document["_ddb"] == {"t": [{"p": ["m", "l", 1], "t": "SS"}]}


def test_awkward_names_are_encoded_reversibly():
    item = {"k": {"S": "a"}, "_id": {"S": "mine"}, "$set": {"N": "1"}, "a.b": {"M": {"$c": {"BOOL": True}, "_id": {"S": "n"}}}}
    document = item_to_document(item, ("k",))
    assert set(document) == {"_id", "k", "%_id", "%%24set", "%a%2Eb"}
    assert document["%a%2Eb"] == {"%%24c": True, "_id": "n"}
    assert document_to_item(document) == {"k": {"S": "a"}, "_id": {"S": "mine"}, "$set": {"N": "1"}, "a.b": {"M": {"$c": {"BOOL": True}, "_id": {"S": "n"}}}}


def test_composite_id_is_hash_then_range():
    document = item_to_document({"sk": {"N": "2"}, "pk": {"S": "a"}}, ("pk", "sk"))
    assert list(document["_id"].items()) == [("pk", "a"), ("sk", 2)]


def test_empty_set_left_by_an_application_removes_the_attribute():
    document = {"_id": "a", "k": "a", "tags": [], "m": {"s": []}, "_ddb": {"t": [{"p": ["tags"], "t": "SS"}, {"p": ["m", "s"], "t": "NS"}]}}
    assert document_to_item(document) == {"k": {"S": "a"}, "m": {"M": {}}}


def test_values_an_application_may_write_map_back():
    document = {"_id": 1, "k": 1, "i64": Int64(5), "f": 0.1, "d": Decimal128("1.50"), "b": bson.Binary(b"x", 0), "t": True}
    assert document_to_item(document) == {
        "k": {"N": "1"},
        "i64": {"N": "5"},
        "f": {"N": "0.1"},
        "d": {"N": "1.5"},
        "b": {"B": b"x"},
        "t": {"BOOL": True},
    }


@pytest.mark.parametrize(
    "item, message",
    [
        ({"k": {"S": "a"}, "n": {"N": "abc"}}, "n: 'abc' is not a number"),
        ({"k": {"S": "a"}, "n": {"N": "NaN"}}, "n: 'NaN' is not a finite number"),
        ({"k": {"S": "a"}, "x": {"X": 1}}, "x: unknown DynamoDB type 'X'"),
        ({"k": {"S": "a"}, "x": {"S": "a", "N": "1"}}, "x: attribute value must have exactly one type key"),
        ({"k": {"S": "a"}, "s": {"SS": []}}, "s: SS must be a non-empty list"),
        ({"k": {"S": "a"}, "s": {"SS": ["a", "a"]}}, "s: SS holds duplicate elements"),
        ({"k": {"S": "a"}, "s": {"NS": ["1", "1.0"]}}, "s: NS holds duplicate elements"),
        ({"k": {"S": "a"}, "m": {"M": {"x": {"L": [{"BOOL": "yes"}]}}}}, "m.x[0]: BOOL value has the wrong shape"),
        ({"j": {"S": "a"}}, "k: key attribute 'k' is missing"),
        ({"k": {"BOOL": True}}, "k: key attribute must be S, N or B"),
    ],
)
def test_unrepresentable_items_are_refused_with_the_path(item, message):
    with pytest.raises(Unrepresentable) as error:
        item_to_document(item, ("k",))
    assert message in error.value.reason


def test_nesting_beyond_bson_limits_is_refused():
    value = {"S": "leaf"}
    for _ in range(120):
        value = {"L": [value]}
    with pytest.raises(Unrepresentable, match="nested deeper than 100 levels"):
        item_to_document({"k": {"S": "a"}, "deep": value}, ("k",))


@pytest.mark.parametrize(
    "document, message",
    [
        ({"k": "a", "when": __import__("datetime").datetime(2024, 1, 1)}, "when: datetime has no exact DynamoDB type"),
        ({"k": "a", "f": float("nan")}, "f: nan is not a finite number"),
        ({"k": "a", "n": Decimal128("1E+200")}, "n: 1E+200 is outside DynamoDB's number range"),
        ({"k": "a", "n": 10**40 + 1}, "outside DynamoDB's number range"),
        ({"k": "a", "u": bson.Binary(b"x", 4)}, "u: expected binary data, got Binary"),
        ({"k": "a", "l": [[]], "_ddb": {"t": [{"p": ["l", 0], "t": "SS"}]}}, "l[0]: an empty set inside a list"),
    ],
)
def test_documents_dynamodb_cannot_hold_are_refused_with_the_path(document, message):
    with pytest.raises(Unrepresentable) as error:
        document_to_item(document)
    assert message in error.value.reason


def test_missing_key_field_is_a_clear_error():
    with pytest.raises(MissingKeyField, match="document lacks key field 'sk'"):
        document_id({"pk": "a"}, ("pk", "sk"))


@given(st.text(max_size=20))
def test_string_values_are_unchanged(text):
    assert item_to_document({"k": {"S": "x"}, "s": {"S": text}}, ("k",))["s"] == text
