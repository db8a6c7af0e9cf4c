"""ION and DYNAMODB_JSON export lines: documented examples, malformed lines, and differential tests."""

from __future__ import annotations

import json

import pytest
from amazon.ion import simpleion
from hypothesis import given

from dynamo2mongo.mapping.canonical import canonical_item
from dynamo2mongo.fullload.export import MalformedRecord, ddbjson, ion, manifest
from dynamo2mongo.sandbox.ion_writer import dump_line

from .strategies import items_with_keys

# The example item of the AWS documentation page on export output formats, in both formats.
DOC_ION = (
    '$ion_1_0 {Item:{Authors:$dynamodb_SS::["Author1","Author2"],Dimensions:"8.5 x 11.0 x 0.5",'
    'ISBN:"111-1111111111",Id:101.,InPublication:true,PageCount:500.,Price:2d1,ProductCategory:"Book",'
    'Title:"Book 101 Title"}}'
)
DOC_JSON = (
    '{"Item":{"Authors":{"SS":["Author1","Author2"]},"Dimensions":{"S":"8.5 x 11.0 x 0.5"},'
    '"ISBN":{"S":"111-1111111111"},"Id":{"N":"101"},"InPublication":{"BOOL":true},"PageCount":{"N":"500"},'
    '"Price":{"N":"20"},"ProductCategory":{"S":"Book"},"Title":{"S":"Book 101 Title"}}}'
)


def _to_ddb_json(item: dict) -> str:
    return json.dumps({"Item": ddbjson.item_to_json(item)})


def test_documented_examples_read_the_same_in_both_formats():
    from_ion = ion.parse_line(DOC_ION.encode())
    from_json = ddbjson.parse_line(DOC_JSON.encode())
    assert canonical_item(from_ion) == canonical_item(from_json)
    assert from_json["Authors"] == {"SS": ["Author1", "Author2"]}


@given(items_with_keys())
def test_ion_writer_output_parses_with_amazon_ion_and_reads_back(case):
    item, _ = case
    text = dump_line(item)
    parsed = simpleion.loads(text, single_value=True)
    assert set(parsed["Item"]) == set(item)
    assert canonical_item(ion.parse_line(text)) == canonical_item(item)
    assert canonical_item(ion.parse_line("$ion_1_0 " + text)) == canonical_item(item)


@given(items_with_keys())
def test_ddb_json_lines_read_back(case):
    item, _ = case
    assert canonical_item(ddbjson.parse_line(_to_ddb_json(item).encode())) == canonical_item(item)


MALFORMED_DDB_JSON = [
    (b'{"Item": {"a": {"S": "x"}', "not valid JSON"),
    (b'{"Items": {}}', 'expected an object {"Item": {...}}'),
    (b'{"Item": {"a": {"Q": "x"}}}', "a: unknown DynamoDB type 'Q'"),
    (b'{"Item": {"a": {"N": 5}}}', "a: N value must be str, got int"),
    (b'{"Item": {"a": {"B": "***"}}}', "a: invalid base64"),
    (b'{"Item": {"a": {"M": {"b": {"L": [{"NULL": false}]}}}}}', "a.b[0]: NULL value must be true"),
    (b'\xff\xfe', "not valid JSON"),
]
MALFORMED_ION = [
    (b"{Item:{a:", "not valid Ion"),
    (b"{Thing:{}}", "expected a struct {Item:{...}}"),
    (b"{Item:{a:1.5e0}}", "a: Ion FLOAT has no DynamoDB type"),
    (b"{Item:{a:$dynamodb_XX::[1.]}}", "a: unknown annotation '$dynamodb_XX'"),
    (b'{Item:{a:$dynamodb_SS::[1.]}}', "a: $dynamodb_SS elements must be strings"),
    (b"{Item:{a:2024-01-01T}}", "a: Ion TIMESTAMP has no DynamoDB type"),
]


@pytest.mark.parametrize(
    "reader, line, reason",
    [(ddbjson, *case) for case in MALFORMED_DDB_JSON] + [(ion, *case) for case in MALFORMED_ION],
)
def test_malformed_lines_of_either_format(reader, line, reason):
    with pytest.raises(MalformedRecord) as error:
        reader.parse_line(line)
    assert reason in error.value.reason


def test_manifests_parse_and_name_missing_fields():
    summary = manifest.parse_summary(
        json.dumps({"exportArn": "arn", "itemCount": 3, "outputFormat": "ION", "manifestFilesS3Key": "k/manifest-files.json"})
    )
    assert (summary.item_count, summary.output_format) == (3, "ION")
    files = manifest.parse_files('{"itemCount":3,"md5Checksum":"x","etag":"e","dataFileS3Key":"k/data/a.ion.gz"}\n\n')
    assert files == [manifest.DataFile("k/data/a.ion.gz", 3, "e", "x")]
    with pytest.raises(manifest.ManifestError, match="manifest-summary.json: required field 'manifestFilesS3Key'"):
        manifest.parse_summary('{"exportArn": "a", "itemCount": 1, "outputFormat": "ION"}')
    with pytest.raises(manifest.ManifestError, match="manifest-files.json line 2: required field 'dataFileS3Key'"):
        manifest.parse_files('{"itemCount":1,"dataFileS3Key":"a"}\n{"itemCount":1}\n')
    with pytest.raises(ValueError, match="unknown export format 'CSV'"):
        manifest.reader_for("CSV")
