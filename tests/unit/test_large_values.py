"""Large values in the full load: strings and blobs of 30 KB to 400 KB (DynamoDB's item limit).

The fast readers (native/ and ``ion._read``) read such values themselves, but leave a line to
amazon-ion for anything else outside the subset DynamoDB writes (whitespace, an Ion long string, a
38-digit number ending in zeros, ...). amazon-ion's C extension reads text values into buffers of a
fixed size (16 KB) and stops at a larger one with IERR_BUFFER_TOO_SMALL or IERR_LOOKAHEAD_OVERFLOW,
which used to quarantine a valid line as "not valid Ion". Each such line must convert, to the same
canonical Extended JSON every other path writes for its item, and a line is called "not valid Ion"
only when it is not.
"""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from dynamo2mongo.fullload.convert import ConvertResult, convert_lines
from dynamo2mongo.fullload.export import MalformedRecord, ion
from dynamo2mongo.fullload.export.ddbjson import item_to_json
from dynamo2mongo.fullload.export.manifest import reader_for
from dynamo2mongo.mapping.canonical import canonical_item
from dynamo2mongo.mapping.native import dynamo2mongo_native, line_converter
from dynamo2mongo.sandbox.ion_writer import dump_line

KEYS = ("pk",)
KB = 1024
# A 38-digit number ending in zeros: a DynamoDB number that both fast readers leave to amazon-ion
# (beyond 34 digits it rounds to a 34-digit decimal, which they do not imitate).
WIDE_NUMBER = "1" + "0" * 37


def convert(export_format: str, line: bytes, native: bool) -> tuple[list[str], list]:
    """What convert_lines writes and quarantines for one line, with or without the compiled path."""
    written, quarantined = [], []
    fast = line_converter(export_format, KEYS) if native else None
    convert_lines(iter([line]), reader_for(export_format), KEYS, written.append, quarantined.append,
                  ConvertResult("t", "t"), fast_line=fast)
    return written, quarantined


def paths() -> list[bool]:
    return [False, True] if dynamo2mongo_native is not None else [False]


def ion_line(item: dict) -> bytes:
    return ("$ion_1_0 " + dump_line(item) + "\n").encode()


def ddbjson_line(item: dict) -> bytes:
    return (json.dumps({"Item": item_to_json(item)}, ensure_ascii=False) + "\n").encode()


def spaced(line: bytes) -> bytes:
    """The same Ion value with whitespace the fast readers leave to amazon-ion."""
    return line.replace(b"{Item:", b"{Item: ", 1)


def the_same_everywhere(item: dict, ion_variants: list[bytes]) -> str:
    """Every path converts every spelling of ``item`` to the same one line; returns it."""
    expected = None
    for export_format, line in [("ION", ion_line(item)), ("DYNAMODB_JSON", ddbjson_line(item))] + [
        ("ION", variant) for variant in ion_variants
    ]:
        if export_format == "ION":
            # The same item (a wide number may come back in another spelling of its value).
            assert canonical_item(ion.parse_line(line)) == canonical_item(item)
        for native in paths():
            written, quarantined = convert(export_format, line, native)
            assert quarantined == [], (export_format, native, [q.reason for q in quarantined])
            assert len(written) == 1
            expected = expected or written[0]
            assert written[0] == expected, (export_format, native, line[:80])
    return expected


# ---- generated items ------------------------------------------------------------------------------

# Characters that take every kind of escape in both formats, and multi-byte UTF-8.
_ALPHABET = st.sampled_from(list("ab z09'\"\\/\t\n\x00\x7f\u00e9\u2028\u4e2d\U0001F600"))
_chunks = st.text(_ALPHABET, min_size=1, max_size=40)


@st.composite
def large_strings(draw, size: int) -> str:
    """A string of at most ``size`` bytes of UTF-8 (DynamoDB counts a string's size so)."""
    chunk = draw(_chunks)
    return (chunk * (size // len(chunk) + 1)).encode()[:size].decode(errors="ignore")


@st.composite
def large_blobs(draw, size: int) -> bytes:
    chunk = draw(st.binary(min_size=1, max_size=40))
    return (chunk * (size // len(chunk) + 1))[:size]


@st.composite
def large_value(draw, size: int) -> dict:
    """One attribute holding a value of ``size`` characters or bytes, at the top, nested or in a set."""
    kind = draw(st.sampled_from(["S", "B", "M", "L", "SS", "BS", "deep"]))
    if kind in ("S", "B"):
        return {kind: draw(large_strings(size) if kind == "S" else large_blobs(size))}
    inner = draw(st.sampled_from(["S", "B"]))
    value = {inner: draw(large_strings(size) if inner == "S" else large_blobs(size))}
    if kind == "M":
        return {"M": {"small": {"N": "1"}, "big": value}}
    if kind == "L":
        return {"L": [{"S": "x"}, value, {"NULL": True}]}
    if kind == "deep":
        return {"M": {"a": {"L": [{"M": {"b": {"L": [value]}}}]}}}
    elements = [value[inner], (b"x" if inner == "B" else "x")]
    return {("SS" if inner == "S" else "BS"): elements}


@st.composite
def large_items(draw) -> dict:
    """An item of one to three large values, 30 KB to 400 KB together, beside small attributes."""
    count = draw(st.integers(1, 3))
    budget = 400 * KB - 2 * KB
    item = {"pk": {"S": "key"}, "n": {"N": "12.5"}, "flag": {"BOOL": True}}
    for index in range(count):
        size = draw(st.integers(30 * KB // count, budget // count))
        item[f"big{index}"] = draw(large_value(size))
    return item


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(large_items(), st.booleans())
def test_large_values_convert_alike_on_every_path_and_in_both_formats(item, wide_number):
    if wide_number:
        item["wide"] = {"N": WIDE_NUMBER}
    plain = ion_line(item)
    assert len(plain) >= 30 * KB
    target(float(len(plain)))  # towards DynamoDB's 400 KB
    # The spellings the fast readers leave to amazon-ion: each must convert as the plain line does.
    the_same_everywhere(item, [spaced(plain), plain.replace(b"{Item:", b"{Item:/* c */", 1)])


# ---- the lines that failed ------------------------------------------------------------------------

BIG_STRING = "x" * (40 * KB)
BIG_BLOB = bytes(range(256)) * (300 * KB // 256)


@pytest.mark.parametrize(
    "name, item, line",
    [
        # Whitespace and a comment: the fast readers leave the line to amazon-ion.
        ("string after a space", {"pk": {"S": "k"}, "s": {"S": BIG_STRING}},
         b'{Item: {pk:"k",s:"' + BIG_STRING.encode() + b'"}}'),
        ("blob after a space", {"pk": {"S": "k"}, "b": {"B": BIG_BLOB}},
         b'{Item: {pk:"k",b:{{' + base64.b64encode(BIG_BLOB) + b"}}}}"),
        ("blob set with a comment", {"pk": {"S": "k"}, "b": {"BS": [BIG_BLOB, b"hi"]}},
         b'{Item:{pk:"k",/* c */b:$dynamodb_BS::[{{' + base64.b64encode(BIG_BLOB) + b"}},{{aGk=}}]}}"),
        # A DynamoDB number the fast readers leave to amazon-ion, beside a large string.
        ("38-digit number", {"pk": {"S": "k"}, "n": {"N": WIDE_NUMBER}, "s": {"S": BIG_STRING}},
         b'{Item:{pk:"k",n:' + WIDE_NUMBER.encode() + b'.,s:"' + BIG_STRING.encode() + b'"}}'),
        # Ion long strings, which the fast readers do not read (two segments make one string).
        ("long string", {"pk": {"S": "k"}, "s": {"S": BIG_STRING * 5}},
         b"{Item:{pk:\"k\",s:'''" + (BIG_STRING * 2).encode() + b"''' '''" + (BIG_STRING * 3).encode() + b"'''}}"),
        # A large field name (DynamoDB allows 64 KB) in quotes after a space.
        ("large name", {"pk": {"S": "k"}, "n" * (20 * KB): {"S": "v"}},
         b"{Item: {pk:\"k\",'" + b"n" * (20 * KB) + b"':\"v\"}}"),
    ],
)
def test_a_valid_line_with_a_large_value_converts_where_it_was_quarantined_as_not_valid_ion(name, item, line):
    expected = the_same_everywhere(item, [line])
    assert expected.startswith('{"_id": "k", "pk": "k"')


def test_a_large_line_outside_the_fast_subset_reaches_its_verdict():
    """A long run of text the tokenizer does not recognise (a long string, a symbol) used to take it
    quadratic time before the line reached amazon-ion: minutes for a 400 KB value, then quarantined
    as "not valid Ion". No timing is asserted here (timings belong in bench/); a return of the
    quadratic tokenizer shows as minutes in this test's duration."""
    text = "x" * (400 * KB - 100)
    item = ion.parse_line(("{Item:{pk:\"k\",s:'''" + text + "'''}}").encode())
    assert item["s"] == {"S": text}
    with pytest.raises(MalformedRecord) as symbol:
        ion.parse_line(("{Item:{pk:\"k\",s:" + text + "}}").encode())
    assert symbol.value.reason == "s: Ion SYMBOL has no DynamoDB type"


def test_when_the_c_extension_still_stops_at_its_buffer_the_pure_python_reader_reads_the_line(monkeypatch):
    item = {"pk": {"S": "k"}, "s": {"S": BIG_STRING}, "b": {"B": BIG_BLOB[: 40 * KB]}}
    line = spaced(ion_line(item))
    monkeypatch.setattr(ion, "_C_BUFFER", 1 << 40)  # the C extension keeps its default buffers
    with pytest.raises(Exception, match="IERR_BUFFER_TOO_SMALL|IERR_LOOKAHEAD_OVERFLOW"):
        from amazon.ion import simpleion

        simpleion.loads(line, single_value=True)
    assert ion.parse_line_reference(line) == item
    assert ion.parse_line(line) == item


# ---- every reason true ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b'{Item: {pk:"k",s:"' + BIG_STRING.encode() + b'"}',  # the struct is not closed
        b'{Item: {pk:"k",s:"' + BIG_STRING.encode() + b'" x y}}',  # two values without a comma
        b'{Item: {pk:"k",s:"' + BIG_STRING.encode() + b"}}",  # the string is not closed
        b'{Item: {pk:"k",s:"' + BIG_STRING.encode() + b'\\q"}}',  # no such escape
        b'{Item: {pk:"k",b:{{' + base64.b64encode(BIG_BLOB) + b"*}}}}",  # not base64
        b'{Item: {pk:"k",s:"' + BIG_STRING.encode() + b'"}} ]',  # a second value that is not Ion
        b"{Item: {pk:\"k\",s:'''" + BIG_STRING.encode() + b"}}",  # the long string is not closed
        b"{Item:{a:",
    ],
)
def test_a_line_that_is_not_valid_ion_is_still_quarantined_as_not_valid_ion(line):
    with pytest.raises(MalformedRecord) as error:
        ion.parse_line(line)
    assert error.value.reason.startswith("not valid Ion: "), error.value.reason
    for native in paths():
        written, quarantined = convert("ION", line, native)
        assert written == [] and [q.reason for q in quarantined] == [error.value.reason]


@pytest.mark.parametrize(
    "line, reason",
    [
        # Valid Ion past the C extension's other limits: the reason names what DynamoDB cannot hold.
        (b'{Item:{pk:"k",a:' + b"x::" * 20 + b"1.}}", "a: unexpected annotation on a DECIMAL"),
        (b'{Item:{pk:"k",a:1d99999999999}}', "outside DynamoDB's number range"),
        (b'{Item:{pk:"k",a:' + b"[" * 3000 + b"]" * 3000 + b"}}", "nested deeper than amazon-ion reads"),
        (b'{Item:{pk:"k",a:' + b"9" * 5000 + b"}}", "an Ion value amazon-ion does not read"),
        (b'{Item: {pk:"k",s:' + BIG_STRING.encode() + b"}}", "s: Ion SYMBOL has no DynamoDB type"),
    ],
)
def test_a_valid_ion_line_past_the_readers_limits_is_quarantined_with_its_own_reason(line, reason):
    for native in paths():
        written, quarantined = convert("ION", line, native)
        assert written == [] and len(quarantined) == 1
        assert reason in quarantined[0].reason and "not valid Ion" not in quarantined[0].reason
