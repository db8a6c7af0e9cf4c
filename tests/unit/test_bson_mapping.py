"""Back to DynamoDB: the BSON values an application writes map as the table's BsonMapping says, or are
refused with a reason (path, why, what to do) that the caller quarantines; item_problems says what
DynamoDB itself would refuse of a converted item."""

from __future__ import annotations

import datetime as dt
import uuid

import bson
import pytest
from bson import Binary, Code, DBRef, Decimal128, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.datetime_ms import DatetimeMS
from hypothesis import given, settings

from dynamo2mongo.mapping.canonical import canonical_item
from dynamo2mongo.mapping import (
    ITEM_SIZE_LIMIT,
    BsonMapping,
    Unrepresentable,
    document_to_item,
    item_problems,
    item_size,
    item_to_document,
)

from .strategies import bson_documents

MAPPINGS = [BsonMapping(d, o) for d in ("iso8601", "epoch_millis", "reject") for o in ("hex", "reject")]
WHEN = dt.datetime(2026, 12, 4, 18, 50, 56, 123000)


def _item(document, mapping=BsonMapping()):
    return document_to_item({"_id": "a", "k": "a", **document}, mapping)


def test_dates_default_to_iso_8601_utc_with_milliseconds():
    berlin = dt.timezone(dt.timedelta(hours=1))
    assert _item({"d": WHEN})["d"] == {"S": "2026-12-04T18:50:56.123Z"}
    assert _item({"d": WHEN.replace(tzinfo=dt.timezone.utc)})["d"] == {"S": "2026-12-04T18:50:56.123Z"}
    assert _item({"d": (WHEN + dt.timedelta(hours=1)).replace(tzinfo=berlin)})["d"] == {"S": "2026-12-04T18:50:56.123Z"}
    assert _item({"d": dt.datetime(1, 1, 1)})["d"] == {"S": "0001-01-01T00:00:00.000Z"}
    assert _item({"d": DatetimeMS(0)})["d"] == {"S": "1970-01-01T00:00:00.000Z"}


def test_iso_dates_sort_as_strings_in_time_order():
    moments = [dt.datetime(1969, 12, 31, 23, 59, 59, 999000), dt.datetime(1970, 1, 1), WHEN, dt.datetime(9999, 1, 1)]
    texts = [_item({"d": m})["d"]["S"] for m in moments]
    assert texts == sorted(texts)


def test_dates_as_epoch_milliseconds_or_refused():
    millis = BsonMapping(dates="epoch_millis")
    assert _item({"d": WHEN}, millis)["d"] == {"N": "1796410256123"}
    assert _item({"d": dt.datetime(1969, 12, 31, 23, 59, 59)}, millis)["d"] == {"N": "-1000"}
    assert _item({"d": DatetimeMS(2**62)}, millis)["d"] == {"N": str(2**62)}
    with pytest.raises(Unrepresentable, match=r"^d: a BSON Date cannot be written: this table's sync.bson_dates is reject"):
        _item({"d": WHEN}, BsonMapping(dates="reject"))


def test_a_date_beyond_year_9999_is_refused_as_iso_and_kept_as_milliseconds():
    far = DatetimeMS(2**62)
    with pytest.raises(Unrepresentable, match=r"outside years 1 to 9999.*set sync.bson_dates to epoch_millis"):
        _item({"d": far})
    assert _item({"d": far}, BsonMapping(dates="epoch_millis"))["d"] == {"N": "4611686018427387904"}


def test_object_ids_as_hex_or_refused():
    oid = ObjectId("65f1a2b3c4d5e6f708192a3b")
    assert _item({"ref": oid, "refs": [oid]}) == {"k": {"S": "a"}, "ref": {"S": "65f1a2b3c4d5e6f708192a3b"},
                                                  "refs": {"L": [{"S": "65f1a2b3c4d5e6f708192a3b"}]}}
    with pytest.raises(Unrepresentable, match=r"^m.ref: an ObjectId cannot be written: .*sync.bson_object_ids is reject"):
        _item({"m": {"ref": oid}}, BsonMapping(object_ids="reject"))


def test_an_unknown_mapping_is_refused():
    with pytest.raises(ValueError, match="bson dates mapping must be one of iso8601, epoch_millis, reject"):
        BsonMapping(dates="unix")


@pytest.mark.parametrize(
    "value, message",
    [
        (float("inf"), "v: inf is not a finite number"),
        (Decimal128("NaN"), "v: NaN is not a finite number"),
        (Decimal128("1E+6144"), "outside DynamoDB's number range"),
        (2**200, "outside DynamoDB's number range"),
        (Regex("^a"), "v: a regular expression (BSON Regex) has no DynamoDB type; store its pattern as a string"),
        (Code("return 1"), "v: JavaScript code (BSON Code) has no DynamoDB type"),
        (MinKey(), "v: MinKey is a MongoDB sort sentinel with no DynamoDB value; remove the field"),
        (MaxKey(), "v: MaxKey is a MongoDB sort sentinel"),
        (Timestamp(1, 1), "v: a BSON Timestamp (MongoDB's internal replication time) has no DynamoDB type"),
        (DBRef("users", 1), "v: a DBRef has no DynamoDB type; store the referenced _id instead"),
        (Binary(b"x", 2), "v: Binary subtype 2 (old binary) cannot be written"),
        (Binary(uuid.uuid4().bytes, 4), "write it as subtype 0 or as its string form"),
        (uuid.uuid4(), "v: a UUID (Binary subtype 4) has no DynamoDB type that keeps it a UUID"),
        ([Code("x")], "v[0]: JavaScript code"),
    ],
)
def test_values_dynamodb_cannot_hold_are_refused_with_what_to_do(value, message):
    with pytest.raises(Unrepresentable) as error:
        _item({"v": value})
    assert message in error.value.reason


@pytest.mark.parametrize(
    "document, message",
    [
        ({"n": {"a": 1}, "_ddb": {"t": [{"p": ["n"], "t": "N"}]}},
         "n: the type hint N in _ddb.t expects a number, got dict; write a number here, or remove this path's hint"),
        ({"n": True, "_ddb": {"t": [{"p": ["n"], "t": "N"}]}}, "n: the type hint N in _ddb.t expects a number, got bool"),
        ({"s": "a", "_ddb": {"t": [{"p": ["s"], "t": "SS"}]}}, "s: the type hint SS in _ddb.t expects an array, got str"),
        ({"s": ["a", 1], "_ddb": {"t": [{"p": ["s"], "t": "SS"}]}}, "expects an array of strings, got int"),
        ({"s": ["a", "a"], "_ddb": {"t": [{"p": ["s"], "t": "SS"}]}}, "s: the SS set holds duplicate members"),
        ({"s": [1, 1.0, Decimal128("1.00")], "_ddb": {"t": [{"p": ["s"], "t": "NS"}]}}, "s: the NS set holds duplicate"),
        ({"s": [b"x", Binary(b"x")], "_ddb": {"t": [{"p": ["s"], "t": "BS"}]}}, "s: the BS set holds duplicate"),
        ({"s": [1], "_ddb": {"t": [{"p": ["s"], "t": "XS"}]}}, "s: unknown type hint 'XS' in _ddb.t"),
        ({"_ddb": {"t": {"p": ["s"]}}}, "_ddb.t: _ddb.t must be a list of type hints, got dict"),
        ({"_ddb": {"t": [{"p": ["s"]}]}}, "_ddb.t[0]: type hint {'p': ['s']} is malformed"),
        ({"_ddb": {"t": [{"p": [{}], "t": "N"}]}}, "_ddb.t[0]: type hint"),
        ({"_ddb": {"t": [{"p": "s", "t": "N"}]}}, "_ddb.t[0]: type hint"),
        ({"": 1}, ": a top-level field with an empty name (or '%') cannot be a DynamoDB attribute"),
        ({"%": 1}, "% 1"[:0] + "a top-level field with an empty name"),
        ({"a": 1, "%a": 2}, "%a: fields 'a' and '%a' both become the DynamoDB attribute 'a'"),
        ({"m": {"x$": 1, "%x%24": 2}}, "both become the DynamoDB attribute 'x$'"),
    ],
)
def test_documents_that_break_their_hints_or_names_are_refused(document, message):
    with pytest.raises(Unrepresentable) as error:
        _item(document)
    assert message in error.value.reason


def test_an_empty_nested_name_is_a_valid_map_key():
    assert _item({"m": {"": 1}})["m"] == {"M": {"": {"N": "1"}}}


SCHEMA = {"pk": "S", "sk": "N"}


@pytest.mark.parametrize(
    "item, problem",
    [
        ({"sk": {"N": "1"}}, "key attribute 'pk' is missing: every document must carry the table's key fields (pk, sk)"),
        ({"pk": {"N": "1"}, "sk": {"N": "1"}}, "key attribute 'pk' is N, but the table's key schema declares S; write it "
                                               "as a string"),
        ({"pk": {"S": ""}, "sk": {"N": "1"}}, "key attribute 'pk' is an empty string, which DynamoDB refuses"),
        ({"pk": {"S": "é" * 1025}, "sk": {"N": "1"}}, "key attribute 'pk' is 2,050 bytes; DynamoDB's limit for a "
                                                      "partition key is 2,048 bytes"),
    ],
)
def test_item_problems_names_the_key_attribute(item, problem):
    assert item_problems(item, SCHEMA).startswith(problem)


def test_item_problems_checks_binary_and_sort_keys():
    schema = {"h": "B", "r": "S"}
    assert item_problems({"h": {"B": b""}, "r": {"S": "x"}}, schema) == (
        "key attribute 'h' is an empty binary, which DynamoDB refuses; give it a value")
    assert "DynamoDB's limit for a sort key is 1,024 bytes" in item_problems({"h": {"B": b"x"}, "r": {"S": "x" * 1025}},
                                                                             schema)
    assert item_problems({"h": {"B": b"x"}, "r": {"S": "x" * 1024}}, schema) is None


def test_item_size_follows_dynamodbs_rules():
    assert item_size({"ab": {"S": "héllo"}}) == 2 + 6
    assert item_size({"n": {"N": "-12345.6700"}}) == 1 + 4 + 1  # 7 significant digits: 4 bytes, +1
    assert item_size({"b": {"B": b"12345"}, "t": {"BOOL": True}, "z": {"NULL": True}}) == 6 + 2 + 2
    assert item_size({"l": {"L": [{"S": "ab"}, {"N": "1"}]}}) == 1 + 3 + (2 + 1) + (2 + 1)
    assert item_size({"m": {"M": {"x": {"S": "ab"}}}, "e": {"M": {}}}) == 1 + 3 + (1 + 2 + 1) + 1 + 3
    assert item_size({"s": {"SS": ["a", "bc"]}, "n": {"NS": ["10", "2"]}}) == 1 + 3 + 1 + 4


def test_an_item_over_400_kb_is_a_problem_and_one_at_the_limit_is_not():
    at_limit = {"pk": {"S": "a"}, "sk": {"N": "1"}, "blob": {"B": b"x" * (ITEM_SIZE_LIMIT - 3 - 4 - 4)}}
    assert item_size(at_limit) == ITEM_SIZE_LIMIT
    assert item_problems(at_limit, SCHEMA) is None
    at_limit["blob"]["B"] += b"x"
    assert item_problems(at_limit, SCHEMA) == (
        "the item is 409,601 bytes by DynamoDB's size rules (attribute names plus values), over its 400 KB "
        "(409,600 bytes) item limit; make the document smaller")


def test_nesting_deeper_than_dynamodb_allows_is_a_problem():
    def nested(levels):
        value = {"S": "leaf"}
        for _ in range(levels):
            value = {"L": [value]}
        return {"pk": {"S": "a"}, "sk": {"N": "1"}, "deep": value}

    assert item_problems(nested(32), SCHEMA) is None
    assert "deeper than DynamoDB's 32 levels" in item_problems(nested(34), SCHEMA)


@settings(max_examples=400)
@given(bson_documents())
def test_every_document_converts_to_a_stable_item_or_is_refused(document):
    for mapping in MAPPINGS:
        try:
            item = document_to_item(document, mapping)
        except Unrepresentable as error:
            assert error.reason and str(error) == error.reason
            continue
        assert bson.encode({"i": item})  # plain values the DynamoDB client can send
        problem = item_problems(item, {"k": "S"})
        assert problem is None or isinstance(problem, str)
        # Lossless where DynamoDB types suffice: the item, synced forward and back again, is the same item.
        again = document_to_item(bson.decode(bson.encode(item_to_document(item, ("k",)))), mapping)
        assert canonical_item(again) == canonical_item(item)
