"""Workers killed mid-way (SIGKILL) leave nothing a rerun cannot finish to the same end state."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
from bson import json_util

from dynamo2mongo.fullload.convert import convert_file
from dynamo2mongo.fullload.export import manifest
from dynamo2mongo.fullload.load import import_file
from dynamo2mongo.sandbox import sample
from dynamo2mongo.sandbox.ion_writer import dump_line
from dynamo2mongo.mapping import item_to_document

pytestmark = pytest.mark.integration
ITEMS = 30_000


def _worker(code: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, stderr=subprocess.PIPE, text=True)


def _kill_when(process: subprocess.Popen, ready, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, f"the worker ended before it could be killed: {process.stderr.read()}"
        assert time.monotonic() < deadline, "the worker made no progress"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_import_killed_mid_way_then_rerun_converges(s3, bucket, mongo_client, mongo_uri, aws_env):
    documents = [item_to_document(sample.item(i), sample.KEY_ATTRS) for i in range(ITEMS)]
    body = "".join(json_util.dumps(d, json_options=json_util.CANONICAL_JSON_OPTIONS) + "\n" for d in documents)
    key = f"recovery/{uuid.uuid4().hex}.jsonl.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(body.encode(), 1))
    name = f"killed_{uuid.uuid4().hex[:8]}"
    collection = mongo_client["recovery"][name]
    worker = _worker(
        f"""
        import boto3
        from pymongo import MongoClient
        from dynamo2mongo.fullload.load import import_file
        target = MongoClient({mongo_uri!r})["recovery"][{name!r}]
        import_file(boto3.client("s3"), {bucket!r}, {key!r}, target, batch_size=200)
        """,
        aws_env,
    )
    _kill_when(worker, lambda: collection.estimated_document_count() > ITEMS // 10)
    partial = collection.count_documents({})
    assert 0 < partial < ITEMS, "the kill must land mid-way for this test to mean anything"

    result = import_file(s3, bucket, key, collection, batch_size=1000)
    assert result.applied == ITEMS
    assert collection.count_documents({}) == ITEMS
    for index in (0, partial - 1, partial, ITEMS - 1):
        assert collection.find_one({"_id": documents[index]["_id"]}) == documents[index]


def test_convert_killed_mid_way_leaves_no_partial_output(s3, bucket, aws_env):
    lines = ["$ion_1_0 " + dump_line(sample.item(0))] + [dump_line(sample.item(i)) for i in range(1, ITEMS)]
    data_key = f"recovery/AWSDynamoDB/{uuid.uuid4().hex}/data/part.ion.gz"
    s3.put_object(Bucket=bucket, Key=data_key, Body=gzip.compress(("\n".join(lines) + "\n").encode(), 1))
    marker = f"/tmp/d2m-convert-started-{uuid.uuid4().hex}"
    worker = _worker(
        f"""
        import boto3
        from dynamo2mongo.fullload import convert
        from dynamo2mongo.fullload.export import manifest
        original = convert.item_to_document
        seen = []
        def counting(item, keys):
            seen.append(1)
            if len(seen) == 2000:
                open({marker!r}, "w").close()
            return original(item, keys)
        convert.item_to_document = counting
        convert.convert_file(boto3.client("s3"), {bucket!r}, {data_key!r}, manifest.reader_for("ION"), ("pk", "sk"), quarantine=print)
        """,
        aws_env,
    )
    _kill_when(worker, lambda: os.path.exists(marker))
    os.unlink(marker)
    output_key = data_key.replace("/data/part.ion.gz", "/mongo-extjson/part.jsonl.gz")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=output_key).get("KeyCount", 0)
    assert listed == 0, "a killed conversion must not leave a partial output file"

    result = convert_file(s3, bucket, data_key, manifest.reader_for("ION"), sample.KEY_ATTRS, quarantine=print)
    assert result.items == ITEMS and result.output_key == output_key
    converted = gzip.decompress(s3.get_object(Bucket=bucket, Key=output_key)["Body"].read()).splitlines()
    assert len(converted) == ITEMS
