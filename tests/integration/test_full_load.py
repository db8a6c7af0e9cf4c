"""Full-load steps against a moto server and a MongoDB wire server, each run twice in a row."""

from __future__ import annotations

import gzip
import hashlib
import base64
import json
import time
import uuid

import pytest
from bson import json_util

from dynamo2mongo.mapping.canonical import canonical_item
from dynamo2mongo.fullload.convert import ConversionFailed, convert_file
from dynamo2mongo.fullload.export import manifest
from dynamo2mongo.fullload.export.ddbjson import item_to_json
from dynamo2mongo.fullload.export.request import ExportError, client_token, completed_export, ensure_pitr, start_export
from dynamo2mongo.fullload.load import import_file
from dynamo2mongo.sandbox import sample
from dynamo2mongo.state import StateStore
from dynamo2mongo.prepare.stream import StreamError, ensure_stream, stream_status
from dynamo2mongo.mapping import document_to_item

pytestmark = pytest.mark.integration


def _new_table(dynamodb, items: int) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    sample.create_table(dynamodb, name)
    sample.seed(lambda: dynamodb, name, items, workers=1)
    return name


def _wait(dynamodb, arn: str):
    for _ in range(300):
        status = dynamodb.describe_export(ExportArn=arn)["ExportDescription"]["ExportStatus"]
        if status != "IN_PROGRESS":
            return completed_export(dynamodb, arn)
        time.sleep(0.1)
    raise AssertionError("export did not finish")


def _snapshot(collection) -> list:
    return sorted((json_util.dumps(d, sort_keys=True) for d in collection.find()), key=str)


@pytest.fixture
def bucket(s3):
    name = f"b-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name


def test_stream_enable_is_idempotent_and_refuses_other_view_types(dynamodb, dynamodbstreams):
    name = _new_table(dynamodb, 0)
    first = ensure_stream(dynamodb, name)
    second = ensure_stream(dynamodb, name)
    assert first.enabled_by_us and not second.enabled_by_us
    assert first.stream_arn == second.stream_arn
    assert stream_status(dynamodbstreams, first.stream_arn) == "ENABLED"

    other = _new_table(dynamodb, 0)
    dynamodb.update_table(TableName=other, StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
    with pytest.raises(StreamError, match="KEYS_ONLY"):
        ensure_stream(dynamodb, other)


def test_pitr_is_only_enabled_when_allowed(dynamodb):
    name = _new_table(dynamodb, 0)
    with pytest.raises(ExportError, match="point-in-time recovery is off"):
        ensure_pitr(dynamodb, name, allow_enable=False)
    assert ensure_pitr(dynamodb, name, allow_enable=True) is True
    assert ensure_pitr(dynamodb, name, allow_enable=True) is False


@pytest.mark.parametrize("export_format", ["ION", "DYNAMODB_JSON"])
def test_export_convert_import_twice_leaves_the_same_collection(dynamodb, s3, mongo_client, bucket, export_format):
    items = 240
    name = _new_table(dynamodb, items)
    ensure_pitr(dynamodb, name, allow_enable=True)
    arn = dynamodb.describe_table(TableName=name)["Table"]["TableArn"]
    token = client_token("dag", f"run-{name}")
    first = start_export(dynamodb, arn, bucket, "exp", export_format, token)
    again = start_export(dynamodb, arn, bucket, "exp", export_format, token)
    assert first.arn == again.arn, "the same ClientToken must not start a second export"
    info = _wait(dynamodb, first.arn)
    assert info.item_count == items

    summary = manifest.parse_summary(s3.get_object(Bucket=bucket, Key=info.manifest_key)["Body"].read())
    files = manifest.parse_files(s3.get_object(Bucket=bucket, Key=summary.manifest_files_key)["Body"].read())
    assert sum(f.item_count for f in files) == items
    assert summary.output_format == export_format

    collection = mongo_client["itest"][name]
    state = StateStore(mongo_client["itest_meta"], name)
    snapshots = []
    for _ in range(2):
        converted = 0
        for data in files:
            result = convert_file(
                s3,
                bucket,
                data.data_key,
                manifest.reader_for(export_format),
                sample.KEY_ATTRS,
                quarantine=lambda bad: state.quarantine(info.export_id, data.data_key, bad.line, bad.reason, bad.raw),
                expected_items=data.item_count,
            )
            converted += result.items
            imported = import_file(s3, bucket, result.output_key, collection, batch_size=37)
            assert imported.applied == result.items
        assert converted == items
        snapshots.append(_snapshot(collection))
    assert snapshots[0] == snapshots[1]
    assert collection.count_documents({}) == items
    for document in collection.find():
        index = int(document["sk"])
        assert canonical_item(document_to_item(document)) == canonical_item(sample.item(index))


def test_converted_output_is_canonical_extended_json(dynamodb, s3, bucket):
    name = _new_table(dynamodb, 20)
    ensure_pitr(dynamodb, name, allow_enable=True)
    arn = dynamodb.describe_table(TableName=name)["Table"]["TableArn"]
    info = _wait(dynamodb, start_export(dynamodb, arn, bucket, "c", "ION", client_token("d", name)).arn)
    summary = manifest.parse_summary(s3.get_object(Bucket=bucket, Key=info.manifest_key)["Body"].read())
    (data, *_) = manifest.parse_files(s3.get_object(Bucket=bucket, Key=summary.manifest_files_key)["Body"].read())
    result = convert_file(s3, bucket, data.data_key, manifest.reader_for("ION"), sample.KEY_ATTRS, quarantine=print)
    lines = gzip.decompress(s3.get_object(Bucket=bucket, Key=result.output_key)["Body"].read()).splitlines()
    assert len(lines) == result.items
    first = json.loads(lines[0])
    # canonical mode spells every number with its BSON type, which relaxed mode would lose
    assert set(first["sk"]) <= {"$numberInt", "$numberLong"}
    assert first["_id"] == {"pk": first["pk"], "sk": first["sk"]}
    assert json_util.loads(lines[0])["_id"]["sk"] == int(first["sk"].popitem()[1])


def _upload_export(s3, bucket: str, prefix: str, files: dict[str, list[bytes]], suffix: str = "json") -> list:
    """An export in the documented layout, written by hand so a test can put bad lines in it."""
    export_id = "01700000000000-deadbeef"
    base = f"{prefix}/AWSDynamoDB/{export_id}"
    manifest_lines = []
    for stem, lines in files.items():
        body = gzip.compress(b"".join(line + b"\n" for line in lines))
        key = f"{base}/data/{stem}.{suffix}.gz"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        manifest_lines.append(
            json.dumps(
                {
                    "itemCount": len(lines),
                    "md5Checksum": base64.b64encode(hashlib.md5(body).digest()).decode(),
                    "etag": hashlib.md5(body).hexdigest(),
                    "dataFileS3Key": key,
                }
            )
        )
    return manifest.parse_files("\n".join(manifest_lines) + "\n")


def _ddb_line(index: int) -> bytes:
    return json.dumps({"Item": item_to_json(sample.item(index))}).encode()


def test_malformed_line_fails_only_its_file_and_is_quarantined(s3, mongo_client, bucket):
    good = [_ddb_line(i) for i in range(10)]
    bad = [_ddb_line(i) for i in range(10, 15)]
    bad[2] = b'{"Item": {"pk": {"S": "x"}, "sk": {"N": "not-a-number"}}}'
    bad[3] = b'{"Item": {"pk": {"S": "truncated'
    files = _upload_export(s3, bucket, "m", {"good": good, "bad": bad})
    collection = mongo_client["itest"][f"m-{uuid.uuid4().hex[:8]}"]
    state = StateStore(mongo_client["itest_meta"], collection.name)
    reader = manifest.reader_for("DYNAMODB_JSON")
    outcome = {}
    for data in files:
        try:
            result = convert_file(
                s3,
                bucket,
                data.data_key,
                reader,
                sample.KEY_ATTRS,
                quarantine=lambda b, key=data.data_key: state.quarantine("e", key, b.line, b.reason, b.raw),
            )
            outcome[data.data_key] = import_file(s3, bucket, result.output_key, collection).applied
        except ConversionFailed as error:
            outcome[data.data_key] = str(error)
    bad_key = next(k for k in outcome if "bad" in k)
    message = outcome[bad_key]
    assert bad_key in message and "line 3" in message and "line 4" in message
    assert "2 record(s) could not be converted" in message
    quarantined = state.quarantined("e", bad_key)
    assert [q["_id"]["line"] for q in quarantined] == [3, 4]
    assert quarantined[1]["raw"] == bad[3].decode()
    assert collection.count_documents({}) == 10, "the good file's import is intact"


def _large_items() -> list[dict]:
    """Items near DynamoDB's 400 KB: large strings and blobs, at the top, nested and in sets."""
    text = "large \u00e9\U0001F600 \"quoted\" \\ text\n" * 9_000
    data = bytes(range(256)) * 1_200
    return [
        {"pk": {"S": "s"}, "sk": {"N": "1"}, "v": {"S": text}},
        {"pk": {"S": "b"}, "sk": {"N": "2"}, "v": {"B": data}},
        {"pk": {"S": "m"}, "sk": {"N": "3"}, "v": {"M": {"a": {"L": [{"S": text[:150_000]}, {"B": data[:150_000]}]}}}},
        {"pk": {"S": "sets"}, "sk": {"N": "4"}, "ss": {"SS": [text[:180_000], "x"]}, "bs": {"BS": [data[:180_000], b"x"]}},
        {"pk": {"S": "wide"}, "sk": {"N": "5"}, "n": {"N": "1" + "0" * 37}, "v": {"S": text[:300_000]}},
    ]


def test_large_values_convert_and_import_from_both_formats_and_every_spelling(s3, mongo_client, bucket):
    from dynamo2mongo.mapping.native import line_converter
    from dynamo2mongo.sandbox.ion_writer import dump_line

    items = _large_items()
    ion_lines = [dump_line(item).encode() for item in items]
    spellings = {
        "ION": ion_lines,
        # whitespace the fast readers leave to amazon-ion, whose C extension used to stop at 16 KB
        "ION spaced": [line.replace(b"{Item:", b"{Item: ", 1) for line in ion_lines],
        "DYNAMODB_JSON": [json.dumps({"Item": item_to_json(item)}).encode() for item in items],
    }
    keys = ("pk", "sk")
    snapshots = []
    for spelling, lines in spellings.items():
        export_format = spelling.split()[0]
        files = _upload_export(s3, bucket, f"large-{uuid.uuid4().hex[:8]}", {"big": lines},
                               suffix="ion" if export_format == "ION" else "json")
        collection = mongo_client["itest"][f"large-{uuid.uuid4().hex[:8]}"]
        quarantined = []
        for native in (line_converter(export_format, keys), None):
            result = convert_file(s3, bucket, files[0].data_key, manifest.reader_for(export_format), keys,
                                  quarantine=quarantined.append, fast_line=native)
            assert (result.items, result.bad_count, quarantined) == (len(items), 0, []), spelling
            assert import_file(s3, bucket, result.output_key, collection, batch_size=2).applied == len(items)
        snapshots.append(_snapshot(collection))
        documents = {document["pk"]: document for document in collection.find()}
        for item in items:
            assert canonical_item(document_to_item(documents[item["pk"]["S"]])) == canonical_item(item), spelling
    assert snapshots[0] == snapshots[1] == snapshots[2]


def test_reimport_keeps_documents_forward_sync_already_updated(mongo_client):
    from dynamo2mongo.fullload.load import import_lines
    from dynamo2mongo.mapping import item_to_document

    collection = mongo_client["itest"][f"guard-{uuid.uuid4().hex[:8]}"]
    lines = [
        json_util.dumps(item_to_document(sample.item(i), sample.KEY_ATTRS), json_options=json_util.CANONICAL_JSON_OPTIONS)
        for i in range(50)
    ]
    first = import_lines(lines, collection, "k", batch_size=7, guard_newer=False)
    assert (first.upserted, first.replaced, first.kept_newer) == (50, 0, 0)
    newer = item_to_document(sample.item(3), sample.KEY_ATTRS) | {"status": "changed-by-stream", "_ddb": {"sync": {"seq": "9"}}}
    collection.replace_one({"_id": newer["_id"]}, newer)
    again = import_lines(lines, collection, "k", batch_size=7, guard_newer=True)
    assert (again.upserted, again.replaced, again.kept_newer) == (0, 49, 1)
    assert again.applied == 50
    assert collection.find_one({"_id": newer["_id"]})["status"] == "changed-by-stream"
    assert collection.count_documents({}) == 50
