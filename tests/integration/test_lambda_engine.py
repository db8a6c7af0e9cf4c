"""Forward sync on Lambda: the handler fed real-shaped events built from the emulator's stream, the
deployment package imported in a clean interpreter, and deployment against the moto server.

moto invokes a mapped function (in Docker, absent here) on every write to a table that has an event
source mapping, and then clears the table's stream records; so the deploy tests use tables of their
own and never write to them once a mapping exists.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import boto3
import pytest
from bson import json_util
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from dynamo2mongo.engines import aws_lambda as lambda_engine
from dynamo2mongo.engines.aws_lambda import package as lambda_package
from dynamo2mongo.mapping.canonical import canonical_item
from dynamo2mongo.sync.checkpoints import read_heartbeat
from dynamo2mongo.config import ExportConfig, LambdaConfig, TableConfig, load_configuration
from dynamo2mongo.fullload.export.ddbjson import item_to_json
from dynamo2mongo.sandbox import engines as sandbox_engines, sample
from dynamo2mongo.state import StateStore
from dynamo2mongo.prepare.stream import ensure_stream
from dynamo2mongo.mapping import document_to_item
from dynamo2mongo.sync.quarantine import Quarantine

pytestmark = pytest.mark.integration

DATABASE = "lambda_itest"
META = "lambda_itest_meta"
# What the Lambda Python runtime provides besides the standard library.
LAMBDA_RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")


def _config(name: str, **forward_lambda) -> TableConfig:
    return TableConfig(
        name=name,
        source_table=name,
        database=DATABASE,
        collection=name,
        metadata_database=META,
        export=ExportConfig(s3_bucket="unused"),
        forward_lambda=LambdaConfig(**forward_lambda),
    )


def _new_table(dynamodb) -> tuple[str, str]:
    name = f"lam-{uuid.uuid4().hex[:10]}"
    sample.create_table(dynamodb, name)
    return name, ensure_stream(dynamodb, name).stream_arn


def _stream_records(streams, stream_arn: str) -> list[dict]:
    records = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            if not page["Records"]:
                break
            records.extend(page["Records"])
            iterator = page.get("NextShardIterator")
    return records


def lambda_event(records: list[dict], stream_arn: str) -> dict:
    """Stream records as Lambda delivers them: binary in base64, times in epoch seconds, the stream's ARN."""
    converted = []
    for record in records:
        data = dict(record["dynamodb"])
        data["ApproximateCreationDateTime"] = float(int(data["ApproximateCreationDateTime"].timestamp()))
        for image in ("Keys", "NewImage", "OldImage"):
            if image in data:
                data[image] = item_to_json(data[image])
        converted.append({**record, "dynamodb": data, "eventSourceARN": stream_arn})
    # Through JSON, as the Lambda service hands the event over.
    return json.loads(json.dumps({"Records": converted}))


def _write_history(dynamodb, name: str) -> None:
    """Inserts, updates (binary and sets included) and deletes, several records per key."""
    for index in range(24):
        dynamodb.put_item(TableName=name, Item=sample.item(index))
    for index in range(0, 24, 3):
        item = sample.item(index)
        item["note"] = {"S": f"updated {index}"}
        item["chunks"] = {"BS": [bytes([index]), b"\xff\x00"]}
        dynamodb.put_item(TableName=name, Item=item)
    for index in range(1, 24, 4):
        item = sample.item(index)
        dynamodb.delete_item(TableName=name, Key={"pk": item["pk"], "sk": item["sk"]})


def _assert_mirrors(dynamodb, name: str, collection: Collection) -> None:
    items = dynamodb.scan(TableName=name)["Items"]
    expected = {(i["pk"]["S"], i["sk"]["N"]): canonical_item(i) for i in items}
    documents = list(collection.find())
    actual = {(d["pk"], str(d["sk"])): canonical_item(document_to_item(d)) for d in documents}
    assert actual == expected


def _snapshot(collection: Collection) -> list[str]:
    return sorted(json_util.dumps(d, sort_keys=True) for d in collection.find())


@pytest.fixture(scope="module")
def secretsmanager(aws_env, aws_endpoint):
    return boto3.session.Session().client("secretsmanager", endpoint_url=aws_endpoint)


@pytest.fixture(scope="module")
def lambda_client(aws_env, aws_endpoint):
    return boto3.session.Session().client("lambda", endpoint_url=aws_endpoint)


@pytest.fixture(scope="module")
def mongo_secret(secretsmanager, mongo_uri) -> str:
    return lambda_engine.ensure_mongo_secret(secretsmanager, f"itest/{uuid.uuid4().hex[:8]}", mongo_uri)["arn"]


@pytest.fixture(scope="module")
def handler_module():
    spec = importlib.util.spec_from_file_location("dynamo2mongo_lambda_handler", lambda_engine.HANDLER_SOURCE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is being built
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture
def handler(handler_module, table):
    """The handler, its cached MongoClient closed afterwards (each test's table changes its settings)."""
    yield handler_module.handler
    if handler_module.runtime.cache_info().currsize:
        settings = lambda_engine.FunctionSettings.from_env(os.environ)
        handler_module.runtime(settings).collection.database.client.close()
        handler_module.runtime.cache_clear()


@pytest.fixture
def table(dynamodb, mongo_client, monkeypatch, mongo_secret):
    """A fresh table with a stream, and the handler's environment pointing at its collection."""
    name, stream_arn = _new_table(dynamodb)
    settings = lambda_engine.function_settings(_config(name), sample.KEY_ATTRS, mongo_secret)
    for variable, value in settings.to_env().items():
        monkeypatch.setenv(variable, value)
    return name, stream_arn, mongo_client[DATABASE][name]


def test_mongo_secret_is_written_once_and_updated_only_on_change(secretsmanager, mongo_uri):
    secret_id = f"itest/{uuid.uuid4().hex[:8]}"
    first = lambda_engine.ensure_mongo_secret(secretsmanager, secret_id, mongo_uri)
    again = lambda_engine.ensure_mongo_secret(secretsmanager, secret_id, mongo_uri)
    changed = lambda_engine.ensure_mongo_secret(secretsmanager, secret_id, mongo_uri + "/?appname=x")
    assert (first["created"], again["created"], again["updated"], changed["updated"]) == (True, False, False, True)
    assert first["arn"] == again["arn"] == changed["arn"]
    versions = secretsmanager.list_secret_version_ids(SecretId=secret_id)["Versions"]
    assert len(versions) == 2
    assert mongo_uri not in json.dumps([first, again, changed])


def test_a_missing_mongo_secret_named_by_arn_names_the_key_to_set(secretsmanager, mongo_uri):
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dynamo2mongo/orders/absent-AbCdEf"
    with pytest.raises(lambda_engine.LambdaDeployError, match=r"absent.* does not exist.*forward_lambda.mongo_secret_id"):
        lambda_engine.ensure_mongo_secret(secretsmanager, arn, mongo_uri)


def test_mongo_uri_carries_the_connection_options():
    assert lambda_engine.mongo_uri_with_options("mongodb://h:1", {}) == "mongodb://h:1"
    assert (
        lambda_engine.mongo_uri_with_options("mongodb+srv://u:p@c.net", {"tls": True, "replicaSet": "rs 0"})
        == "mongodb+srv://u:p@c.net/?replicaSet=rs%200&tls=true"
    )
    assert lambda_engine.mongo_uri_with_options("mongodb://h/db", {"w": 1}) == "mongodb://h/db?w=1"
    with pytest.raises(lambda_engine.LambdaDeployError, match="'driver'"):
        lambda_engine.mongo_uri_with_options("mongodb://h", {"driver": {"name": "x"}})


def test_handler_mirrors_the_table_and_ignores_redelivery(dynamodb, dynamodbstreams, mongo_client, table, handler):
    name, stream_arn, collection = table
    _write_history(dynamodb, name)
    records = _stream_records(dynamodbstreams, stream_arn)
    assert {r["eventName"] for r in records} == {"INSERT", "MODIFY", "REMOVE"}
    half = len(records) // 2
    first, second = lambda_event(records[:half], stream_arn), lambda_event(records[half:], stream_arn)

    assert handler(first, None) == {"batchItemFailures": []}
    assert handler(second, None) == {"batchItemFailures": []}
    _assert_mirrors(dynamodb, name, collection)
    snapshot = _snapshot(collection)

    # Lambda may deliver a batch again (a retry, or a replay from TRIM_HORIZON): nothing changes.
    assert handler(first, None) == {"batchItemFailures": []}
    assert handler(lambda_event(records, stream_arn), None) == {"batchItemFailures": []}
    assert _snapshot(collection) == snapshot

    beat = read_heartbeat(mongo_client[META], name, "forward")
    assert beat["engine"] == "lambda" and beat["status"] == "applying"
    assert beat["stream"] == stream_arn
    assert beat["counts"]["records"] == len(records) and beat["counts"]["written"] == 0
    newest = max(r["dynamodb"]["ApproximateCreationDateTime"] for r in records)
    assert abs(beat["newest_created"].replace(tzinfo=dt.timezone.utc) - newest) < dt.timedelta(seconds=1)


def test_unconvertible_record_is_reported_and_the_rest_applied(
    dynamodb, dynamodbstreams, table, handler, caplog
):
    name, stream_arn, collection = table
    for index in range(6):
        dynamodb.put_item(TableName=name, Item=sample.item(index))
    event = lambda_event(_stream_records(dynamodbstreams, stream_arn), stream_arn)
    poison = event["Records"][2]
    poison["dynamodb"]["NewImage"]["sku"] = {"B": "not base64!"}

    with caplog.at_level(logging.INFO, logger="dynamo2mongo.lambda"):
        answer = handler(event, None)

    # Quarantined, so it never holds the shard back: no item is reported for Lambda to retry.
    assert answer == {"batchItemFailures": []}
    assert collection.count_documents({}) == 5
    assert collection.count_documents({"sk": 2}) == 0
    assert any("invalid base64" in r.getMessage() and poison["eventID"] in r.getMessage() for r in caplog.records)
    assert any('"quarantined": 1' in r.getMessage() for r in caplog.records)
    (entry,) = Quarantine(collection.database.client[META], name).entries("forward")
    assert entry["key"] == {"pk": sample.item(2)["pk"]["S"], "sk": 2} and "invalid base64" in entry["reason"]


def test_rejected_write_reports_the_earliest_record_of_its_key(
    dynamodb, dynamodbstreams, mongo_client, table, handler, monkeypatch
):
    name, stream_arn, collection = table
    for index in range(4):
        dynamodb.put_item(TableName=name, Item=sample.item(index))
    for index in (1, 3):
        item = sample.item(index)
        item["note"] = {"S": "second version"}
        dynamodb.put_item(TableName=name, Item=item)
    event = lambda_event(_stream_records(dynamodbstreams, stream_arn), stream_arn)
    rejected_id = {"pk": sample.item(1)["pk"]["S"], "sk": 1}
    earliest = next(r for r in event["Records"] if r["dynamodb"]["Keys"]["sk"] == {"N": "1"})

    real_bulk_write = Collection.bulk_write

    def rejecting(self, requests, *args, **kwargs):
        """The server refuses the writes of one key (as a schema validator would) and does the rest."""
        if self.name != name:
            return real_bulk_write(self, requests, *args, **kwargs)
        refused = [i for i, op in enumerate(requests) if op._filter["_id"] == rejected_id]
        done = real_bulk_write(self, [op for i, op in enumerate(requests) if i not in refused], *args, **kwargs)
        details = dict(done.bulk_api_result)
        details["writeErrors"] = [{"index": i, "code": 121, "errmsg": "Document failed validation"} for i in refused]
        raise BulkWriteError(details)

    monkeypatch.setattr(Collection, "bulk_write", rejecting)
    answer = handler(event, None)

    assert answer == {"batchItemFailures": []}
    assert collection.count_documents({}) == 3
    assert collection.find_one({"_id": {"pk": sample.item(3)["pk"]["S"], "sk": 3}})["note"] == "second version"
    quarantine = Quarantine(mongo_client[META], name)
    (entry,) = quarantine.entries("forward")
    assert entry["key"] == rejected_id and "121" in entry["reason"]

    # The refused key's records were not taken as applied: delivered again once the server takes
    # the write, they are applied and the entry is resolved.
    monkeypatch.setattr(Collection, "bulk_write", real_bulk_write)
    start = int(earliest["dynamodb"]["SequenceNumber"])
    retried = {"Records": [r for r in event["Records"] if int(r["dynamodb"]["SequenceNumber"]) >= start]}
    assert handler(retried, None) == {"batchItemFailures": []}
    _assert_mirrors(dynamodb, name, collection)
    assert quarantine.entries("forward") == []


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return lambda_engine.build_package(tmp_path_factory.mktemp("package") / "forward.zip")


def test_package_is_deterministic_and_self_contained(package, tmp_path, monkeypatch):
    again = lambda_engine.build_package(tmp_path / "again.zip")
    assert again.read_bytes() == package.read_bytes()
    names = zipfile.ZipFile(package).namelist()
    assert names == sorted(names)
    assert "handler.py" in names and "dynamo2mongo/sync/forward.py" in names
    for top in ("pymongo/", "bson/", "gridfs/", "dns/", "msgspec/"):
        assert any(n.startswith(top) for n in names), top
    assert not any(n.startswith("dynamo2mongo/sandbox/") or "__pycache__" in n for n in names)

    monkeypatch.setattr(lambda_package, "MAX_ZIPPED_BYTES", 1000)
    with pytest.raises(lambda_engine.LambdaDeployError, match="over Lambda's limits"):
        lambda_engine.build_package(tmp_path / "too-big.zip")
    assert not (tmp_path / "too-big.zip").exists()


def _runtime_path(tmp_path: Path) -> Path:
    """A directory holding only what the Lambda runtime provides next to the standard library."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    for module in LAMBDA_RUNTIME_MODULES:
        spec = importlib.util.find_spec(module)
        source = Path(spec.submodule_search_locations[0]) if spec.submodule_search_locations else Path(spec.origin)
        (runtime / source.name).symlink_to(source)
    return runtime


PROBE = """
import json, sys
import handler
answer = handler.handler(json.load(sys.stdin), None)
import bson, pymongo
print(json.dumps({"answer": answer, "pymongo": pymongo.__file__, "path": sys.path}))
"""


def test_package_runs_in_a_clean_interpreter(package, tmp_path, dynamodb, dynamodbstreams, table, aws_env):
    name, stream_arn, collection = table
    for index in range(5):
        dynamodb.put_item(TableName=name, Item=sample.item(index))
    event = lambda_event(_stream_records(dynamodbstreams, stream_arn), stream_arn)
    code = tmp_path / "task"
    zipfile.ZipFile(package).extractall(code)
    env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "D2M_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(code), str(_runtime_path(tmp_path))])
    # -S: no site-packages (the venv's pymongo must not be found); -s: no user site; -B: no .pyc.
    result = subprocess.run(
        [sys.executable, "-S", "-s", "-B", "-c", PROBE],
        input=json.dumps(event),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["answer"] == {"batchItemFailures": []}
    assert report["pymongo"].startswith(str(code))
    assert not any("site-packages" in entry for entry in report["path"])
    _assert_mirrors(dynamodb, name, collection)


def test_deploy_twice_changes_nothing_and_follows_configuration(
    dynamodb, lambda_client, secretsmanager, aws_env, aws_endpoint, package, mongo_uri
):
    name, stream_arn = _new_table(dynamodb)  # never written to: see the module docstring
    iam = boto3.session.Session().client("iam", endpoint_url=aws_endpoint)
    cloudwatch = boto3.session.Session().client("cloudwatch", endpoint_url=aws_endpoint)
    role = sandbox_engines.lambda_role(iam)
    assert sandbox_engines.lambda_role(iam) == role
    config = _config(name, role_arn=role)
    secret = lambda_engine.ensure_mongo_secret(secretsmanager, lambda_engine.mongo_secret_id(config), mongo_uri)
    zip_bytes = package.read_bytes()

    first = lambda_engine.ensure_function(lambda_client, config, zip_bytes, secret["arn"], sample.KEY_ATTRS)
    second = lambda_engine.ensure_function(lambda_client, config, zip_bytes, secret["arn"], sample.KEY_ATTRS)
    assert first["created"] and not second["created"]
    assert not second["code_updated"] and second["configuration_updated"] == []
    assert first["code_sha256"] == second["code_sha256"] == lambda_engine.code_sha256(zip_bytes)
    deployed = lambda_client.get_function(FunctionName=config.lambda_function_name)["Configuration"]
    assert (deployed["Runtime"], deployed["Handler"], deployed["Role"]) == ("python3.11", "handler.handler", role)
    assert (deployed["MemorySize"], deployed["Timeout"]) == (512, 120)
    environment = deployed["Environment"]["Variables"]
    assert mongo_uri not in json.dumps(environment)
    settings = lambda_engine.FunctionSettings.from_env(environment)
    assert settings.key_attrs == sample.KEY_ATTRS and settings.mongo_secret_id == secret["arn"]

    mapping = lambda_engine.ensure_event_source_mapping(lambda_client, config, stream_arn, first["function_name"])
    again = lambda_engine.ensure_event_source_mapping(lambda_client, config, stream_arn, first["function_name"])
    assert mapping["created"] and not again["created"] and again["updated"] == []
    assert mapping["uuid"] == again["uuid"]
    described = lambda_client.get_event_source_mapping(UUID=mapping["uuid"])
    assert described["StartingPosition"] == "TRIM_HORIZON"
    assert described["BisectBatchOnFunctionError"] is True
    assert described["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert (described["BatchSize"], described["MaximumRetryAttempts"]) == (500, 100)

    changed = _config(
        name,
        role_arn=role,
        batch_size=200,
        parallelization_factor=4,
        memory_mb=1024,
        on_failure_destination="arn:aws:sqs:us-east-1:123456789012:forward-failures",
    )
    updated = lambda_engine.ensure_event_source_mapping(lambda_client, changed, stream_arn, first["function_name"])
    assert updated["uuid"] == mapping["uuid"] and not updated["created"]
    assert set(updated["updated"]) == {"BatchSize", "ParallelizationFactor", "DestinationConfig"}
    described = lambda_client.get_event_source_mapping(UUID=mapping["uuid"])
    assert (described["BatchSize"], described["ParallelizationFactor"]) == (200, 4)
    assert described["DestinationConfig"]["OnFailure"]["Destination"].endswith(":forward-failures")
    reconfigured = lambda_engine.ensure_function(lambda_client, changed, zip_bytes, secret["arn"], sample.KEY_ATTRS)
    assert reconfigured["configuration_updated"] == ["MemorySize"] and not reconfigured["code_updated"]
    empty_zip = b"PK\x05\x06" + bytes(18)
    new_code = lambda_engine.ensure_function(lambda_client, changed, empty_zip, secret["arn"], sample.KEY_ATTRS)
    assert new_code["code_updated"] and new_code["code_sha256"] != first["code_sha256"]

    now = dt.datetime.now(dt.timezone.utc)
    facts = lambda_engine.lambda_lag_facts(lambda_client, cloudwatch, first["function_name"], mapping["uuid"], now)
    assert (facts["state"], facts["iterator_age_seconds"]) == ("Enabled", None)
    cloudwatch.put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": "IteratorAge",
                "Dimensions": [{"Name": "FunctionName", "Value": first["function_name"]}],
                "Timestamp": now - dt.timedelta(minutes=age),
                "Value": value,
                "Unit": "Milliseconds",
            }
            for age, value in ((1, 4000.0), (2, 1500.0), (30, 99000.0))
        ],
    )
    facts = lambda_engine.lambda_lag_facts(lambda_client, cloudwatch, first["function_name"], mapping["uuid"], now)
    assert facts["iterator_age_seconds"] == 4.0

    paused = lambda_engine.ensure_event_source_mapping(
        lambda_client, changed, stream_arn, first["function_name"], enabled=False
    )
    assert paused["updated"] == ["Enabled"] and paused["state"] == "Disabled"
    facts = lambda_engine.lambda_lag_facts(lambda_client, cloudwatch, first["function_name"], mapping["uuid"], now)
    assert facts["state"] == "Disabled"


def test_deploy_operator_records_the_forward_engine(dynamodb, lambda_client, mongo_client, mongo_uri, aws_endpoint,
                                                    airflow_tables):
    from dynamo2mongo_airflow.forward_lambda import DeployForwardLambdaOperator

    name, stream_arn = _new_table(dynamodb)  # never written to: see the module docstring
    # What the sandbox's entry points do before the DAG runs: the role a real account is configured with.
    role = sandbox_engines.lambda_role(boto3.session.Session().client("iam", endpoint_url=aws_endpoint))
    airflow_tables(name, DATABASE, META, defaults={"environment": "sandbox"}, sync={"forward": "lambda"},
                   forward_lambda={"role_arn": role})
    state = StateStore(mongo_client[META], name)
    state.update_migration(stream={"arn": stream_arn}, source={"key": list(sample.KEY_ATTRS)})

    operator = DeployForwardLambdaOperator(task_id="deploy_forward_lambda", table=load_configuration().table(name))
    first = operator.execute({"params": {}, "run_id": "manual__1"})
    second = operator.execute({"params": {}, "run_id": "manual__1"})

    assert first == second
    (mapping,) = lambda_client.list_event_source_mappings(EventSourceArn=stream_arn)["EventSourceMappings"]
    assert first["mapping_uuid"] == mapping["UUID"]
    migration = state.document()
    assert migration["forward_sync_started"] is True
    assert migration["forward"]["engine"] == "lambda" and migration["forward"]["mapping_uuid"] == first["mapping_uuid"]
    assert mongo_uri not in json.dumps(migration, default=str) and mongo_uri not in json.dumps(first)
