"""The DESIGN §4 mapping: item -> MongoDB -> item is identical, or the item is refused with a reason."""

from __future__ import annotations

import decimal
import gzip
import io
import json
import re

import bson
import pytest
from bson import Decimal128, Int64
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynamo2mongo.mapping.canonical import canonical_item
from dynamo2mongo.fullload.convert import ConversionFailed, convert_file
from dynamo2mongo.fullload.export import ddbjson
from dynamo2mongo.mapping.keys import MissingKeyField, document_id
from dynamo2mongo.mapping import Unrepresentable, document_to_item, item_to_document

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
        ({"k": "a", "r": bson.Regex("^a", "i")}, "r: a regular expression (BSON Regex) has no DynamoDB type"),
        ({"k": "a", "f": float("nan")}, "f: nan is not a finite number"),
        ({"k": "a", "n": Decimal128("1E+200")}, "n: 1E+200 is outside DynamoDB's number range"),
        ({"k": "a", "n": 10**40 + 1}, "outside DynamoDB's number range"),
        ({"k": "a", "u": bson.Binary(b"x", 4)}, "u: Binary subtype 4 (UUID) cannot be written"),
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


# ---- numbers DynamoDB cannot hold ------------------------------------------------------------------

_RANGE = "is outside DynamoDB's number range"
_RANGE_TEXT = "at most 38 significant digits, magnitude 1E-130 to 9.9999999999999999999999999999999999999E+125"
_ASCII = "is not a number: DynamoDB numbers use ASCII digits only"
# Digits of other scripts: str.isdigit() accepts all of them, int() and Decimal() some ("٣" reads as 3).
_FOREIGN_DIGITS = "²³¹٣١٢۴५๓０９𝟗"
_EXACT = decimal.Context(prec=1000, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


def _dynamodb_number(text: str) -> decimal.Decimal | None:
    """The number DynamoDB stores for ``text``, or None when it refuses the text (the test's oracle)."""
    if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", text, re.ASCII):
        return None
    value = _EXACT.create_decimal(text)
    if value == 0:
        return value
    significant = "".join(map(str, value.as_tuple().digits)).rstrip("0")
    return value if len(significant) <= 38 and -130 <= value.adjusted() <= 125 else None


@st.composite
def number_like_texts(draw) -> str:
    """Spellings near DynamoDB's numbers: any length, any exponent, now and then a foreign digit."""
    digits = st.text("0123456789", max_size=45)
    text = draw(st.sampled_from(["", "+", "-"])) + draw(digits)
    if draw(st.booleans()):
        text += "." + draw(digits)
    exponent = draw(st.none() | st.integers(-200, 200) | st.integers(-(10**7), 10**7) | st.sampled_from([6111, 6112, -6176, -6177]))
    if exponent is not None:
        text += draw(st.sampled_from("eE")) + (f"{exponent:+d}" if draw(st.booleans()) else str(exponent))
    if text and draw(st.integers(0, 3)) == 0:
        at = draw(st.integers(0, len(text) - 1))
        text = text[:at] + draw(st.sampled_from(_FOREIGN_DIGITS)) + text[at + 1 :]
    return text


# Each place where the mapping reads a number by a path of its own: (item holding the N text, the N
# text read back from the item).
_PLACES = {
    "key": (lambda n: {"k": {"N": n}}, lambda item: item["k"]["N"]),
    "top": (lambda n: {"k": {"S": "a"}, "n": {"N": n}}, lambda item: item["n"]["N"]),
    "map": (lambda n: {"k": {"S": "a"}, "m": {"M": {"n": {"N": n}}}}, lambda item: item["m"]["M"]["n"]["N"]),
    "list": (lambda n: {"k": {"S": "a"}, "l": {"L": [{"N": n}]}}, lambda item: item["l"]["L"][0]["N"]),
    "set": (lambda n: {"k": {"S": "a"}, "s": {"NS": [n]}}, lambda item: item["s"]["NS"][0]),
}


@given(st.one_of(number_like_texts(), st.text(max_size=30)))
def test_a_number_converts_exactly_or_is_refused_with_a_reason(text):
    expected = _dynamodb_number(text)
    for mapping in ("lossless", "double_when_exact"):
        for place, (item_with, read_back) in _PLACES.items():
            try:
                document = item_to_document(item_with(text), ("k",), mapping)
            except Unrepresentable as error:
                assert expected is None, f"{text!r} ({place}, {mapping}) is a DynamoDB number: {error.reason}"
                assert repr(text if len(text) <= 80 else text[:60]) in error.reason
                continue
            assert expected is not None, f"{text!r} ({place}, {mapping}) is no DynamoDB number"
            stored = bson.decode(bson.encode(document))
            assert decimal.Decimal(read_back(document_to_item(stored))) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("²", f"'²' {_ASCII}"),
        ("٣", f"'٣' {_ASCII}"),
        ("-٣", f"'-٣' {_ASCII}"),
        ("1²", f"'1²' {_ASCII}"),
        ("１２", f"'１２' {_ASCII}"),
        ("1e+０", f"'1e+０' {_ASCII}"),
        ("1E+9999999", f"'1E+9999999' {_RANGE}"),
        ("1E-9999999", f"'1E-9999999' {_RANGE}"),
        ("1E-6177", f"'1E-6177' {_RANGE}"),
        ("1E+6112", f"'1E+6112' {_RANGE}"),
        ("1E+126", f"'1E+126' {_RANGE}"),
        ("1E-131", f"'1E-131' {_RANGE}"),
        ("1E+" + "9" * 5000, f"'1E+{'9' * 57}'... (5,003 characters) {_RANGE}"),
        ("1" * 39, f"'{'1' * 39}' has 39 significant digits; DynamoDB numbers have at most 38"),
        ("Infinity", "'Infinity' is not a finite number"),
        (" 1", "' 1' is not a number"),
        ("1_000", "'1_000' is not a number"),
    ],
)
@pytest.mark.parametrize("mapping", ["lossless", "double_when_exact"])
def test_numbers_dynamodb_cannot_hold_are_refused_with_the_value_and_why(text, message, mapping):
    for place, (item_with, _) in _PLACES.items():
        with pytest.raises(Unrepresentable) as error:
            item_to_document(item_with(text), ("k",), mapping)
        assert message in error.value.reason, place


@pytest.mark.parametrize("value", [5, 1.5, None, ["1"]])
def test_a_number_that_is_not_text_is_refused(value):
    with pytest.raises(Unrepresentable, match=f"n: number must be a string, got {type(value).__name__}"):
        item_to_document({"k": {"S": "a"}, "n": {"N": value}}, ("k",))


@pytest.mark.parametrize(
    "text, stored",
    [
        ("1E-130", Decimal128("1E-130")),
        ("-0.00000000000000000000000000000000000000000000000000000000000000000000000000000000000000001E-41", Decimal128("-1E-130")),
        ("9.9999999999999999999999999999999999999E+125", "9.9999999999999999999999999999999999999E+125"),
        ("1" + "0" * 5000 + "E-4990", 10**10),
        ("1E+" + "0" * 5000 + "5", 10**5),
        ("0E+9999999", 0),
    ],
)
def test_numbers_at_dynamodbs_limits_are_kept(text, stored):
    assert item_to_document({"k": {"S": "a"}, "n": {"N": text}}, ("k",))["n"] == stored


@given(st.booleans(), st.integers(0, 10**34 - 1), st.integers(-6176, 6111))
def test_every_decimal128_goes_back_exactly_or_is_refused(negative, coefficient, exponent):
    value = decimal.Decimal((int(negative), tuple(map(int, str(coefficient))), exponent))
    try:
        text = document_to_item({"n": Decimal128(value)})["n"]["N"]
    except Unrepresentable as error:
        assert _dynamodb_number(str(value)) is None
        assert _RANGE in error.reason
        return
    assert decimal.Decimal(text) == value and _dynamodb_number(text) == value


@given(st.one_of(st.integers(), st.integers(-(10**200), 10**200), st.floats(allow_nan=False, allow_infinity=False)))
def test_every_int_and_double_goes_back_exactly_or_is_refused(value):
    exact = decimal.Decimal(repr(value)) if isinstance(value, float) else decimal.Decimal(value)
    try:
        text = document_to_item({"n": value})["n"]["N"]
    except Unrepresentable as error:
        assert _dynamodb_number(str(exact)) is None
        assert _RANGE in error.reason
        return
    assert decimal.Decimal(text) == exact


@pytest.mark.parametrize(
    "document, message",
    [
        ({"n": 10**70 + 1}, f"n: {10**70 + 1} {_RANGE}"),
        ({"n": 10**1000001}, f"n: 1{'0' * 59}... (1,000,002 characters) {_RANGE}"),
        ({"n": Decimal128("1E+6144")}, f"n: 1.000000000000000000000000000000000E+6144 {_RANGE}"),
        ({"n": Decimal128("-1E-6176")}, f"n: -1E-6176 {_RANGE}"),
        ({"n": 5e-324}, f"n: 5E-324 {_RANGE}"),
        ({"n": Decimal128("sNaN")}, "n: sNaN is not a finite number"),
        ({"n": "٣", "_ddb": {"t": [{"p": ["n"], "t": "N"}]}}, f"n: '٣' {_ASCII}"),
        ({"n": "1E+9999999", "_ddb": {"t": [{"p": ["n"], "t": "N"}]}}, f"n: '1E+9999999' {_RANGE}"),
        ({"s": [1, Decimal128("1E+200")], "_ddb": {"t": [{"p": ["s"], "t": "NS"}]}}, f"s: 1E+200 {_RANGE}"),
    ],
)
def test_numbers_dynamodb_cannot_hold_are_not_written_back(document, message):
    with pytest.raises(Unrepresentable) as error:
        document_to_item({"_id": "a", "k": "a", **document})
    assert message in error.value.reason


class _FakeS3:
    """Just the two calls convert_file makes."""

    def __init__(self, body: bytes):
        self.body = body
        self.uploaded: list[str] = []

    def get_object(self, Bucket, Key):
        return {"Body": io.BytesIO(gzip.compress(self.body))}

    def upload_file(self, path, bucket, key, ExtraArgs):
        self.uploaded.append(key)


def test_records_with_numbers_dynamodb_cannot_hold_are_quarantined_by_convert():
    numbers = ["1", "²", "٣", "1E+9999999", "1E-6177", "2"]
    lines = [json.dumps({"Item": {"pk": {"S": f"p{i}"}, "n": {"N": n}}}) for i, n in enumerate(numbers)]
    s3 = _FakeS3("\n".join(lines).encode() + b"\n")
    quarantined = []
    with pytest.raises(ConversionFailed) as failure:
        convert_file(s3, "b", "e/AWSDynamoDB/x/data/f.json.gz", ddbjson.parse_line, ("pk",), quarantine=quarantined.append)
    assert [(b.line, b.reason, b.raw) for b in quarantined] == [
        (2, f"n: '²' {_ASCII}", lines[1]),
        (3, f"n: '٣' {_ASCII}", lines[2]),
        (4, f"n: '1E+9999999' {_RANGE} ({_RANGE_TEXT})", lines[3]),
        (5, f"n: '1E-6177' {_RANGE} ({_RANGE_TEXT})", lines[4]),
    ]
    assert "4 record(s) could not be converted" in str(failure.value) and "line 4: n: '1E+9999999'" in str(failure.value)
    assert failure.value.result.items == 2 and s3.uploaded == []

    accepted = convert_file(s3, "b", "e/AWSDynamoDB/x/data/f.json.gz", ddbjson.parse_line, ("pk",), quarantine=quarantined.append, accept_quarantined=True)
    assert (accepted.items, accepted.bad_count) == (2, 4)
    assert s3.uploaded == [accepted.output_key]

