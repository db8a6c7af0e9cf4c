"""The compiled line conversion (native/) against the Python path it stands in for.

For every line it converts, the compiled path must write exactly the bytes ``convert_lines`` writes
without it (reader, mapping, baseline mark, Extended JSON); every line it leaves (None) is one the
Python path converts or quarantines itself. Checked on the sample items, on generated items of every
type with awkward names and numbers, on a list of awkward lines, and on damaged lines.
"""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynamo2mongo.fullload.convert import ConvertResult, convert_lines
from dynamo2mongo.fullload.export.ddbjson import item_to_json
from dynamo2mongo.fullload.export.manifest import reader_for
from dynamo2mongo.mapping.native import dynamo2mongo_native, line_converter
from dynamo2mongo.sandbox import sample
from dynamo2mongo.sandbox.ion_writer import dump_line
from tests.unit.strategies import items_with_keys

pytestmark = pytest.mark.skipif(dynamo2mongo_native is None, reason="dynamo2mongo_native is not installed")
FORMATS = ("ION", "DYNAMODB_JSON")


def ddbjson_line(item: dict) -> str:
    return json.dumps({"Item": item_to_json(item)})


def export_line(export_format: str, item: dict) -> bytes:
    return (dump_line(item) if export_format == "ION" else ddbjson_line(item)).encode()


def python_path(export_format: str, key_attrs: tuple[str, ...], line: bytes) -> str | None:
    """What convert_lines writes for the line without the compiled path (None: quarantined)."""
    written, quarantined = [], []
    convert_lines(iter([line]), reader_for(export_format), key_attrs, written.append, quarantined.append,
                  ConvertResult("t", "t"))
    return written[0] if written else None


def assert_same(export_format: str, key_attrs: tuple[str, ...], line: bytes) -> str | None:
    fast = line_converter(export_format, key_attrs)(line)
    if fast is not None:
        assert fast == python_path(export_format, key_attrs, line), line
    return fast


@pytest.mark.parametrize("export_format", FORMATS)
def test_the_sample_items_convert_alike_and_none_is_left_to_python(export_format):
    convert = line_converter(export_format, sample.KEY_ATTRS)
    for index in range(600):
        line = export_line(export_format, sample.item(index))
        fast = convert(line)
        assert fast is not None, line
        assert fast == python_path(export_format, sample.KEY_ATTRS, line), index


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(items_with_keys(), st.sampled_from(FORMATS))
def test_generated_items_convert_alike(case, export_format):
    item, key_attrs = case
    line = export_line(export_format, item)
    fast = assert_same(export_format, key_attrs, line)
    if fast is None:
        # Left to Python: an item the mapping refuses (empty or duplicate sets), or text outside the
        # compiled reader (the generated names and strings reach every corner of Ion's escapes).
        return


AWKWARD_ION = [
    '{Item:{pk:"a",sk:1.}}',
    '$ion_1_0 {Item:{pk:"a",sk:1.}}\r\n',
    '{Item:{pk:"a", sk:1.}}',  # whitespace: amazon-ion's
    '{Item:{pk:"a",sk:1.,pk:"b"}}',  # a repeated name
    '{Item:{pk:"a",sk:1.,x:$dynamodb_SS::[]}}',  # an empty set: quarantined
    '{Item:{pk:"a",sk:1.,x:$dynamodb_NS::[1.,1.0]}}',  # one number twice: quarantined
    '{Item:{pk:"a",sk:1.,x:$dynamodb_SS::["b","a","b"]}}',
    '{Item:{pk:"a",sk:1.,x:"\\ud83d\\ude00 \\x41\\u00e9\\U0001F600\\0\\a\\v\\?\\/"}}',
    '{Item:{pk:"a",sk:1.,x:"\\ud83d"}}',  # a lone surrogate
    '{Item:{pk:"a",sk:1.,x:"\\ude00\\ud83d"}}',
    '{Item:{pk:"a",sk:1.,x:"\\U0000D800"}}',
    '{Item:{pk:"a",sk:1.,x:"\\q"}}',
    '{Item:{pk:"a",sk:1.,x:"del\x7f and tab\t raw"}}',
    "{Item:{pk:\"a\",sk:1.,'a.b':1.,'$x':2.,'_id':3.,\"_ddb\":4.,'%':5.,'':6.,'\\x00':7.}}",
    '{Item:{pk:"a",sk:1.,$10:1.}}',  # a symbol ID
    '{Item:{pk:"a",sk:1.,true:1.}}',
    '{Item:{pk:"a",sk:1.,x:null.string}}',
    '{Item:{pk:"a",sk:1.,x:nan}}',
    '{Item:{pk:"a",sk:1.,x:1e5}}',  # an Ion float
    '{Item:{pk:"a",sk:1.,x:1_000}}',
    '{Item:{pk:"a",sk:1.,x:007}}',
    '{Item:{pk:"a",sk:1.,x:-0.,y:0d-3,z:-0d5}}',
    '{Item:{pk:"a",sk:12345678901234567890123456789012345678.}}',  # a 38-digit key: a hinted string
    '{Item:{pk:"a",sk:1234567890123456789012345678901234567800000.}}',  # beyond 40 digits
    '{Item:{pk:"a",sk:1.,x:10000000000000000000000000000000000000.}}',  # >34 digits ending in zeros
    '{Item:{pk:"a",sk:1.,x:1d126,y:1d-131}}',  # outside DynamoDB's range: quarantined
    '{Item:{pk:"a",sk:1.,x:9999999999999999999999999999999999999d89}}',
    '{Item:{pk:"a",sk:1.,x:{{QR==}},y:{{}},z:{{QQ}},w:{{Q Q==}}}}',
    '{Item:{pk:"a",sk:1.,x:{{AAEC}},y:$dynamodb_BS::[{{AA==}},{{AQ==}}]}}',
    '{Item:{pk:"a",sk:1.,x:[1.,[2.,{a:[]}],{}],y:{b:{c:{}}}}}',
    '{Item:{pk:"a",sk:1.,x:[1.,]}}',
    '{Item:{pk:"a",sk:1.,}}',
    '{Item:{pk:"a",sk:1.},Other:1.}',
    '{Item:{pk:"a",sk:1.}}x',
    '{Item:{sk:1.}}',  # a key attribute missing
    '{Item:{pk:true,sk:1.}}',
    '{Item:{pk:"a",sk:1.,x:a::1.}}',
    '{Item:{pk:{{AQ==}},sk:-12.50}}',
    '{Item:{pk:"a",sk:1.,x:"a":1.}}',
    '{Item:' + "{a:" * 120 + "1." + "}" * 120 + "}",
]

AWKWARD_JSON = [
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": "1"}}}',
    ' {"Item":{"pk":{"S":"a"},"sk":{"N":"1"}}} \n',
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": "1"}}, "x": 1}',
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": "1"}, "pk": {"S": "b"}}}',
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": " 1"}}}',
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": "+1.50e+2"}}}',
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": ".5"}, "x": {"N": "5."}}}',
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": "1e1234567890"}}}',
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": "Infinity"}}}',
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": 1}}}',
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": "1"}, "x": {"S": "\\ud83d\\ude00\\u00e9\\n\\u0000"}}}',
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": "1"}, "x": {"S": "\\ud83d"}}}',
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": "1"}, "x": {"S": "raw\tcontrol"}}}',
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": "1"}, "x": {"B": "QR=="}, "y": {"B": "QQ"}, "z": {"B": ""}}}',
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": "1"}, "x": {"NULL": false}, "y": {"BOOL": "true"}}}',
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": "1"}, "x": {"NULL": true}, "y": {"BOOL": false}}}',
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": "1"}, "x": {"S": "a", "N": "1"}}}',
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": "1"}, "x": {"SS": []}, "y": {"NS": ["1", "1.0"]}}}',
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": "1"}, "x": {"NS": ["3", "-1.25E+3", "0.5"]}}}',
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": "1"}, "x": {"XS": []}}}',
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": "1"}, "\\u0024x": {"S": "dollar"}, "": {"S": "empty"}}}',
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": "123456789012345678901234567890123456"}}}',
    '{"Item": {"pk": {"S": "a"}, "sk": {"N": "1"}}',
    '["Item"]',
]


@pytest.mark.parametrize("export_format, line", [("ION", line) for line in AWKWARD_ION]
                         + [("DYNAMODB_JSON", line) for line in AWKWARD_JSON])
def test_awkward_lines_convert_alike_or_are_left_to_python(export_format, line):
    assert_same(export_format, ("pk", "sk"), line.encode())


def test_what_the_compiled_path_covers():
    convert = line_converter("ION", ("pk", "sk"))
    assert convert(AWKWARD_ION[0].encode()) is not None
    assert convert(AWKWARD_ION[7].encode()) is not None, "escapes DynamoDB writes stay on the compiled path"
    assert convert(AWKWARD_ION[22].encode()) is not None, "38-digit numbers stay on the compiled path"
    for left in (2, 3, 4, 8, 25):
        assert convert(AWKWARD_ION[left].encode()) is None, AWKWARD_ION[left]


@pytest.mark.parametrize("export_format", FORMATS)
def test_damaged_lines_convert_alike_or_are_left_to_python(export_format):
    rng = random.Random(7)
    alphabet = b'{}[]",:.-0123456789dDeE$_\\ \'abxuSNBLM=+/\n\x00\xc3\xa9'
    for _ in range(1500):
        line = bytearray(export_line(export_format, sample.item(rng.randrange(200))))
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(len(line))
            action = rng.random()
            if action < 0.4:
                del line[position]
            elif action < 0.7:
                line.insert(position, rng.choice(alphabet))
            else:
                line[position] = rng.choice(alphabet)
        assert_same(export_format, sample.KEY_ATTRS, bytes(line))
