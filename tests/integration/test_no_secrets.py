"""The MongoDB password stays where it belongs: in the Secrets Manager secrets the AWS engines read.

The table's Mongo connection carries a password made for this test. The Airflow tasks that handle it
(the deploy tasks of forward sync on Lambda and of backward sync on DMS) run against the moto server,
and the forward relay runs as a process with the password in $MONGO_URI. The password must appear in
none of: their logs, what they return (XCom), the Lambda function's configuration, the DMS endpoints,
the metadata database. That it does reach both secrets is checked too, so the search cannot pass by
never having seen it; likewise the logs searched must hold the lines the code is known to write.

The tests' MongoDB wire server has no users, so clients made from the credentialed URI connect to it
without the credentials (``without_users``); every other piece of code gets the URI whole.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid

import boto3
import pymongo
import pytest
import yaml
from bson import json_util

from dynamo2mongo import connections
from dynamo2mongo.config import load_configuration
from dynamo2mongo.sandbox import engines as sandbox_engines, sample
from dynamo2mongo.sandbox.main import mongo_connection
from dynamo2mongo.state import StateStore
from dynamo2mongo.prepare.stream import ensure_stream
from tests.integration.forward_helpers import relay_env

pytestmark = pytest.mark.integration

PASSWORD = f"pw{uuid.uuid4().hex}"
USER = "d2m-app"
META = "nosecret_meta"
DATABASE = "nosecret"

# The relay, with pymongo's client pointed at the test server (which has no users) whatever its URI.
RELAY_WITHOUT_USERS = """
import os, runpy, pymongo
class Client(pymongo.MongoClient):
    def __init__(self, host=None, *args, **kwargs):
        super().__init__(os.environ["TEST_SERVER_URI"], *args, **kwargs)
pymongo.MongoClient = Client
runpy.run_module("dynamo2mongo", run_name="__main__", alter_sys=True)
"""


def assert_no_password(where: str, text: str) -> None:
    assert PASSWORD not in text, f"the MongoDB password is in {where}"


@pytest.fixture(scope="module")
def credentialed_uri(mongo_uri) -> str:
    scheme, rest = mongo_uri.split("://", 1)
    return f"{scheme}://{USER}:{PASSWORD}@{rest.rpartition('@')[2]}"


@pytest.fixture
def without_users(monkeypatch, mongo_uri):
    class Client(pymongo.MongoClient):
        def __init__(self, host=None, *args, **kwargs):
            super().__init__(mongo_uri if isinstance(host, str) and PASSWORD in host else host, *args, **kwargs)

    # Where every client of the tasks is made (the glue hands the hook's URI to it).
    monkeypatch.setattr(connections, "MongoClient", Client)


def _table(name: str, source_table: str, **sync) -> dict:
    return {
        "name": name,
        "source_table": source_table,
        "database": DATABASE,
        "collection": name,
        "metadata_database": META,
        "export": {"s3_bucket": "unused"},
        "sync": sync,
        "dms": {"poll_seconds": 1, "max_wait_seconds": 60},
    }


@pytest.fixture
def tables(tmp_path, monkeypatch, dynamodb, aws_endpoint, credentialed_uri):
    """Three fresh tables with streams (one per engine: moto delivers writes to a mapped table's
    function, so the Lambda table is never written to), configured under Airflow connections whose
    Mongo connection holds the password."""
    suffix = uuid.uuid4().hex[:8]
    names = {engine: f"nosecret_{engine}_{suffix}" for engine in ("lambda", "dms", "relay")}
    streams = {}
    for engine, name in names.items():
        sample.create_table(dynamodb, name)
        streams[engine] = ensure_stream(dynamodb, name).stream_arn
    document = {
        "defaults": {"environment": "sandbox", "aws_conn_id": "nosecret_aws", "mongo_conn_id": "nosecret_mongo"},
        "tables": [
            _table(names["lambda"], names["lambda"], forward="lambda"),
            _table(names["dms"], names["dms"], backward="dms"),
            _table(names["relay"], names["relay"]),
        ],
    }
    path = tmp_path / "tables.yaml"
    path.write_text(yaml.safe_dump(document))
    # What the sandbox's entry points make before the DAG runs: the Lambda role, the DMS instance and roles.
    session = boto3.session.Session()
    sandbox_engines.provisioned_configuration(path, lambda service: session.client(service, endpoint_url=aws_endpoint),
                                              path)
    monkeypatch.setenv("D2M_CONFIG", str(path))
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow_home"))
    aws = {"conn_type": "aws", "login": "sandbox", "password": "sandbox", "extra": {"endpoint_url": aws_endpoint}}
    monkeypatch.setenv("AIRFLOW_CONN_NOSECRET_AWS", json.dumps(aws))
    monkeypatch.setenv("AIRFLOW_CONN_NOSECRET_MONGO", json.dumps(mongo_connection(credentialed_uri)))
    return names, streams, path


def test_deploy_tasks_keep_the_password_in_the_secrets(
    tables, without_users, mongo_client, aws_endpoint, caplog, capsys
):
    from dynamo2mongo_airflow.dms import DeployDmsBackwardOperator
    from dynamo2mongo_airflow.forward_lambda import DeployForwardLambdaOperator

    names, streams, _ = tables
    StateStore(mongo_client[META], names["lambda"]).update_migration(
        stream={"arn": streams["lambda"]}, source={"key": list(sample.KEY_ATTRS)}
    )
    context = {"params": {}, "run_id": "manual__nosecret"}
    configuration = load_configuration()
    with caplog.at_level(logging.INFO):
        returned = {
            "lambda": DeployForwardLambdaOperator(task_id="forward_sync", table=configuration.table(names["lambda"])).execute(context),
            "dms": DeployDmsBackwardOperator(task_id="deploy_backward", table=configuration.table(names["dms"])).execute(context),
        }
    captured = capsys.readouterr()
    logs = caplog.text + captured.out + captured.err
    assert f"forward sync of {names['lambda']} on Lambda" in logs and f"backward sync of {names['dms']} on DMS" in logs
    assert_no_password("the deploy tasks' logs", logs)
    assert_no_password("what the deploy tasks return (XCom)", json.dumps(returned))

    session = boto3.session.Session()
    lambda_client = session.client("lambda", endpoint_url=aws_endpoint)
    function = lambda_client.get_function_configuration(FunctionName=returned["lambda"]["function_arn"])
    assert_no_password("the Lambda function's configuration", json.dumps(function, default=str))
    dms = session.client("dms", endpoint_url=aws_endpoint)
    for arn in (returned["dms"]["source_endpoint_arn"], returned["dms"]["target_endpoint_arn"]):
        (endpoint,) = dms.describe_endpoints(Filters=[{"Name": "endpoint-arn", "Values": [arn]}])["Endpoints"]
        assert_no_password(f"DMS endpoint {arn}", json.dumps(endpoint, default=str))
    meta = mongo_client[META]
    for name in meta.list_collection_names():
        assert_no_password(f"{META}.{name}", json_util.dumps(list(meta[name].find())))

    migrations = {name: StateStore(meta, name).document() for name in (names["lambda"], names["dms"])}
    secrets = session.client("secretsmanager", endpoint_url=aws_endpoint)
    forward_secret = secrets.get_secret_value(SecretId=migrations[names["lambda"]]["forward"]["secret_arn"])
    assert PASSWORD in forward_secret["SecretString"]
    assert function["Environment"]["Variables"]["D2M_MONGO_SECRET_ID"] == forward_secret["ARN"]
    dms_secret = secrets.get_secret_value(SecretId=migrations[names["dms"]]["backward_dms"]["secret_arn"])
    assert json.loads(dms_secret["SecretString"])["password"] == PASSWORD


def test_relay_keeps_the_password_out_of_its_output(tables, dynamodb, mongo_client, aws_env, mongo_uri,
                                                    credentialed_uri):
    names, streams, _ = tables
    name = names["relay"]
    StateStore(mongo_client[META], name).update_migration(
        phase="full_load_done", stream={"arn": streams["relay"]}, source={"key": list(sample.KEY_ATTRS)}
    )
    for index in range(3):
        dynamodb.put_item(TableName=name, Item=sample.item(index))
    env = {**relay_env(aws_env), "D2M_CONFIG": os.environ["D2M_CONFIG"], "MONGO_URI": credentialed_uri}
    command = ["relay", "forward", "--table", name, "--poll-seconds", "0.2"]

    # A server that refuses the credentials: the relay stops, and says so without the URI.
    refused = subprocess.run([sys.executable, "-m", "dynamo2mongo", *command], env=env, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode != 0 and "OperationFailure" in refused.stderr
    assert_no_password("the output of a relay whose credentials were refused", refused.stdout + refused.stderr)

    relay = subprocess.Popen(
        [sys.executable, "-c", RELAY_WITHOUT_USERS, "--log-level", "DEBUG", *command],
        env={**env, "TEST_SERVER_URI": mongo_uri},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        collection = mongo_client[DATABASE][name]
        deadline = time.monotonic() + 60
        while collection.count_documents({}) < 3 and relay.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        relay.send_signal(signal.SIGTERM)
        out, err = relay.communicate(timeout=60)
    assert relay.returncode == 0, err[-3000:]
    assert collection.count_documents({}) == 3, err[-3000:]
    assert f"forward relay of {name}: applying" in err
    assert_no_password("the relay's output (DEBUG)", out + err)
    meta = mongo_client[META]
    for collection_name in meta.list_collection_names():
        assert_no_password(f"{META}.{collection_name}", json_util.dumps(list(meta[collection_name].find())))
