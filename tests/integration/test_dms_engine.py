"""Backward sync on DMS: deployment and task control against the moto server; where moto lacks the API
(ModifyEndpoint, ModifyReplicationTask, a second TestConnection, failed tasks) the requests are checked
with botocore's Stubber.

moto's tasks stay "creating" until started and then run at once; it ignores StartReplicationTaskType,
so the start type sent is read from the request itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import uuid
from collections.abc import Iterator

import boto3
import pytest
from botocore.stub import ANY, Stubber

from dynamo2mongo.engines import dms as dms_engine
from dynamo2mongo.config import DmsConfig, ExportConfig, TableConfig
from dynamo2mongo.sandbox import engines as sandbox_engines

pytestmark = pytest.mark.integration

KEYS = ("pk", "sk")
KEY_TYPES = {"pk": "S", "sk": "N"}
SOURCE = dms_engine.MongoSource(host="db1.example", port=27017, username="dms", password="first-pass", auth_source="admin")


def _config(name: str | None = None, collection: str = "orders") -> TableConfig:
    name = name or f"dms-{uuid.uuid4().hex[:10]}"
    return TableConfig(name=name, source_table=name, database="shop", collection=collection, export=ExportConfig(s3_bucket="unused"))


@pytest.fixture(scope="module")
def clients(aws_env, aws_endpoint):
    session = boto3.session.Session()
    return {name: session.client(name, endpoint_url=aws_endpoint) for name in ("dms", "secretsmanager", "iam")}


@pytest.fixture(scope="module")
def settings(clients):
    return sandbox_engines.dms_settings(
        clients["dms"], clients["iam"], DmsConfig(poll_seconds=1, max_wait_seconds=20)
    )


@contextlib.contextmanager
def recorded(client) -> Iterator[list[tuple[str, dict]]]:
    """Record every request the client sends (operation name and parameters)."""
    calls: list[tuple[str, dict]] = []

    def record(params, model, **kwargs):
        calls.append((model.name, dict(params)))

    client.meta.events.register("provide-client-params.dms.*", record, unique_id="recorded")
    try:
        yield calls
    finally:
        client.meta.events.unregister("provide-client-params.dms.*", unique_id="recorded")


def _deploy(clients, settings, config, source=SOURCE):
    return dms_engine.deploy(clients["dms"], clients["secretsmanager"], settings, config, source, KEYS, KEY_TYPES)


def test_deploy_twice_gives_one_endpoint_pair_and_one_task_unchanged(clients, settings):
    config = _config()
    dms = clients["dms"]
    first = _deploy(clients, settings, config)
    assert first["source_endpoint"]["created"] and first["target_endpoint"]["created"] and first["task"]["created"]
    assert sorted(first["tested"]) == sorted([first["source_endpoint"]["identifier"], first["target_endpoint"]["identifier"]])

    with recorded(dms) as calls:
        second = _deploy(clients, settings, config)
    for part in ("source_endpoint", "target_endpoint", "task"):
        assert (second[part]["arn"], second[part]["created"], second[part]["modified"]) == (first[part]["arn"], False, [])
    assert second["tested"] == [] and second["source_endpoint"]["secret_changed"] is False
    assert not [name for name, _ in calls if name.startswith(("Create", "Modify", "TestConnection", "Start"))]

    mine = [e for e in dms.describe_endpoints()["Endpoints"] if e["EndpointIdentifier"].startswith(f"dynamo2mongo-{config.name}-")]
    assert sorted(e["EngineName"] for e in mine) == ["dynamodb", "mongodb"]
    tasks = dms.describe_replication_tasks(Filters=[{"Name": "replication-task-id", "Values": [first["task"]["identifier"]]}])
    (task,) = tasks["ReplicationTasks"]
    assert task["MigrationType"] == "cdc"
    assert task["ReplicationInstanceArn"] == settings.replication_instance_arn
    assert json.loads(task["TableMappings"]) == dms_engine.table_mappings(config, KEYS, KEY_TYPES)
    assert json.loads(task["ReplicationTaskSettings"])["FullLoadSettings"]["TargetTablePrepMode"] == "DO_NOTHING"


def test_credentials_live_only_in_the_secret(clients, settings):
    config = _config()
    result = _deploy(clients, settings, config)
    assert "first-pass" not in json.dumps(result, default=str)
    (source,) = clients["dms"].describe_endpoints(
        Filters=[{"Name": "endpoint-id", "Values": [result["source_endpoint"]["identifier"]]}]
    )["Endpoints"]
    mongo = source["MongoDbSettings"]
    assert not {"Username", "Password", "ServerName", "Port"} & set(mongo)
    assert (mongo["SecretsManagerSecretId"], mongo["SecretsManagerAccessRoleArn"]) == (
        result["source_endpoint"]["secret_arn"],
        settings.secrets_access_role_arn,
    )
    assert (mongo["NestingLevel"], mongo["UseUpdateLookUp"], mongo["DatabaseName"], mongo["AuthType"]) == ("one", True, "shop", "password")
    secret = clients["secretsmanager"].get_secret_value(SecretId=result["source_endpoint"]["secret_arn"])
    assert json.loads(secret["SecretString"]) == {"host": "db1.example", "port": 27017, "username": "dms", "password": "first-pass"}


def test_new_credentials_store_a_new_secret_version_and_ask_for_a_new_test(clients, settings):
    config = _config()
    first = dms_engine.ensure_source_endpoint(clients["dms"], clients["secretsmanager"], settings, config, SOURCE)
    rotated = dms_engine.MongoSource(**{**SOURCE.__dict__, "password": "second-pass"})
    second = dms_engine.ensure_source_endpoint(clients["dms"], clients["secretsmanager"], settings, config, rotated)
    assert (second["arn"], second["created"], second["modified"], second["secret_changed"]) == (first["arn"], False, [], True)
    secret = clients["secretsmanager"].get_secret_value(SecretId=second["secret_arn"])
    assert json.loads(secret["SecretString"])["password"] == "second-pass"


def test_the_same_credentials_laid_out_otherwise_are_no_new_version(clients):
    # As a secret written with the console or the CLI would be.
    secretsmanager, secret_id = clients["secretsmanager"], f"itest/{uuid.uuid4().hex[:8]}"
    secretsmanager.create_secret(Name=secret_id, SecretString=json.dumps(json.loads(SOURCE.secret_string()), indent=2))
    result = dms_engine.ensure_source_secret(secretsmanager, secret_id, SOURCE.secret_string(), "orders")
    assert (result["created"], result["updated"]) == (False, False)
    assert len(secretsmanager.list_secret_version_ids(SecretId=secret_id)["Versions"]) == 1


def test_a_missing_secret_named_by_arn_names_the_key_to_set(clients):
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dynamo2mongo/orders/absent-AbCdEf"
    with pytest.raises(dms_engine.DmsError, match=r"table 'orders': secret .*absent.* does not exist.*dms.source_secret_id"):
        dms_engine.ensure_source_secret(clients["secretsmanager"], arn, SOURCE.secret_string(), "orders")


def test_start_stop_resume(clients, settings):
    config = _config()
    dms = clients["dms"]
    _deploy(clients, settings, config)
    with recorded(dms) as calls:
        assert dms_engine.start_task(dms, settings, config) == "start-replication"
        assert dms_engine.task_status(dms, settings, config).status == "running"
        assert dms_engine.start_task(dms, settings, config) is None
        assert dms_engine.stop_task(dms, settings, config) is True
        assert dms_engine.task_status(dms, settings, config).status == "stopped"
        assert dms_engine.stop_task(dms, settings, config) is False
        assert dms_engine.resume_task(dms, settings, config) is True
        assert dms_engine.task_status(dms, settings, config).status == "running"
        assert dms_engine.resume_task(dms, settings, config) is False
        dms_engine.stop_task(dms, settings, config)
        # A task that ran before is resumed from its checkpoint even when asked to start.
        assert dms_engine.start_task(dms, settings, config, wait=False) == "resume-processing"
    starts = [params["StartReplicationTaskType"] for name, params in calls if name == "StartReplicationTask"]
    assert starts == ["start-replication", "resume-processing", "resume-processing"]
    assert [name for name, _ in calls].count("StopReplicationTask") == 2


def test_resume_needs_a_task_that_ran(clients, settings):
    config = _config()
    _deploy(clients, settings, config)
    with pytest.raises(dms_engine.DmsError, match=r"table '.*': DMS replication task .*-backward never ran.*start it"):
        dms_engine.resume_task(clients["dms"], settings, config)


def test_a_task_on_another_instance_is_not_silently_reused(clients, settings):
    config = _config()
    _deploy(clients, settings, config)
    other = clients["dms"].create_replication_instance(
        ReplicationInstanceIdentifier=f"other-{uuid.uuid4().hex[:8]}", ReplicationInstanceClass="dms.t3.micro"
    )["ReplicationInstance"]["ReplicationInstanceArn"]
    moved = dataclasses.replace(settings, replication_instance_arn=other)
    with pytest.raises(dms_engine.DmsError, match=r"uses another ReplicationInstanceArn.*move-replication-task"):
        _deploy(clients, moved, config)


def test_missing_roles_are_named_with_the_key_to_set(clients):
    with pytest.raises(dms_engine.DmsError, match=r"table '.*': 'dms.target_role_arn' is not set"):
        dms_engine.ensure_target_endpoint(clients["dms"], DmsConfig(), _config())


# ---- what moto cannot do: the requests, checked with Stubber -----------------------------------


@pytest.fixture()
def stubbed():
    client = boto3.session.Session().client(
        "dms", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


STUB_SETTINGS = DmsConfig(
    replication_instance_arn="arn:aws:dms:us-east-1:123456789012:rep:INSTANCE",
    secrets_access_role_arn="arn:aws:iam::123456789012:role/dms-secrets",
    target_role_arn="arn:aws:iam::123456789012:role/dms-dynamodb",
    poll_seconds=1,
    max_wait_seconds=5,
)
TASK_ARN = "arn:aws:dms:us-east-1:123456789012:task:TASK"
SOURCE_ARN = "arn:aws:dms:us-east-1:123456789012:endpoint:SOURCE"
TARGET_ARN = "arn:aws:dms:us-east-1:123456789012:endpoint:TARGET"
BY_ARN = {"Filters": [{"Name": "replication-task-arn", "Values": [TASK_ARN]}], "WithoutSettings": True}


def _task(config: TableConfig, status: str, mappings: dict, started: bool = True) -> dict:
    task = {
        "ReplicationTaskIdentifier": dms_engine.identifier(STUB_SETTINGS, config, "backward"),
        "ReplicationTaskArn": TASK_ARN,
        "ReplicationInstanceArn": STUB_SETTINGS.replication_instance_arn,
        "SourceEndpointArn": SOURCE_ARN,
        "TargetEndpointArn": TARGET_ARN,
        "MigrationType": "cdc",
        "TableMappings": json.dumps(mappings),
        # DMS answers with every setting, its defaults included.
        "ReplicationTaskSettings": json.dumps({**dms_engine.task_settings(), "ChangeProcessingTuning": {"BatchApplyTimeoutMin": 1}}),
        "Status": status,
    }
    if started:
        task["ReplicationTaskStartDate"] = "2024-01-01T00:00:00Z"
    return task


def _describe(stubber, task, **params):
    stubber.add_response("describe_replication_tasks", {"ReplicationTasks": [task]}, params or None)


def test_a_mapping_change_modifies_a_stopped_task(stubbed):
    client, stubber = stubbed
    config = _config("orders", collection="orders_v2")
    old = dms_engine.table_mappings(_config("orders"), KEYS, KEY_TYPES)
    new = dms_engine.table_mappings(config, KEYS, KEY_TYPES)
    task_id = dms_engine.identifier(STUB_SETTINGS, config, "backward")
    _describe(stubber, _task(config, "stopped", old), Filters=[{"Name": "replication-task-id", "Values": [task_id]}])
    stubber.add_response(
        "modify_replication_task",
        {"ReplicationTask": _task(config, "modifying", new)},
        {"ReplicationTaskArn": TASK_ARN, "TableMappings": json.dumps(new, sort_keys=True)},
    )
    _describe(stubber, _task(config, "stopped", new), **BY_ARN)
    _describe(stubber, _task(config, "stopped", new))
    facts = dms_engine.ensure_replication_task(client, STUB_SETTINGS, config, SOURCE_ARN, TARGET_ARN, new)
    assert (facts["modified"], facts["restarted"], facts["status"]) == (["TableMappings"], False, "stopped")


def test_a_mapping_change_stops_modifies_and_resumes_a_running_task(stubbed):
    client, stubber = stubbed
    config = _config("orders", collection="orders_v2")
    old = dms_engine.table_mappings(_config("orders"), KEYS, KEY_TYPES)
    new = dms_engine.table_mappings(config, KEYS, KEY_TYPES)
    _describe(stubber, _task(config, "running", old))
    _describe(stubber, _task(config, "running", old))
    stubber.add_response("stop_replication_task", {"ReplicationTask": _task(config, "stopping", old)}, {"ReplicationTaskArn": TASK_ARN})
    _describe(stubber, _task(config, "stopped", old), **BY_ARN)
    stubber.add_response("modify_replication_task", {"ReplicationTask": _task(config, "modifying", new)}, {"ReplicationTaskArn": TASK_ARN, "TableMappings": ANY})
    _describe(stubber, _task(config, "stopped", new), **BY_ARN)
    _describe(stubber, _task(config, "stopped", new))
    stubber.add_response(
        "start_replication_task",
        {"ReplicationTask": _task(config, "starting", new)},
        {"ReplicationTaskArn": TASK_ARN, "StartReplicationTaskType": "resume-processing"},
    )
    _describe(stubber, _task(config, "running", new), **BY_ARN)
    _describe(stubber, _task(config, "running", new))
    facts = dms_engine.ensure_replication_task(client, STUB_SETTINGS, config, SOURCE_ARN, TARGET_ARN, new)
    assert (facts["modified"], facts["restarted"], facts["status"]) == (["TableMappings"], True, "running")


def test_unchanged_task_with_dms_defaults_is_left_alone(stubbed):
    client, stubber = stubbed
    config = _config("orders")
    mappings = dms_engine.table_mappings(config, KEYS, KEY_TYPES)
    _describe(stubber, _task(config, "running", mappings))
    facts = dms_engine.ensure_replication_task(client, STUB_SETTINGS, config, SOURCE_ARN, TARGET_ARN, mappings)
    assert (facts["created"], facts["modified"]) == (False, [])


def test_start_waits_for_a_task_still_being_created(stubbed):
    client, stubber = stubbed
    config = _config("orders")
    mappings = dms_engine.table_mappings(config, KEYS, KEY_TYPES)
    _describe(stubber, _task(config, "creating", mappings, started=False))
    stubber.add_client_error("start_replication_task", "InvalidResourceStateFault", "task is being created")
    _describe(stubber, _task(config, "ready", mappings, started=False), **BY_ARN)
    stubber.add_response(
        "start_replication_task",
        {"ReplicationTask": _task(config, "starting", mappings)},
        {"ReplicationTaskArn": TASK_ARN, "StartReplicationTaskType": "start-replication"},
    )
    _describe(stubber, _task(config, "running", mappings), **BY_ARN)
    assert dms_engine.start_task(client, STUB_SETTINGS, config) == "start-replication"


def test_failed_task_status_carries_the_reason(stubbed):
    client, stubber = stubbed
    config = _config("orders")
    failed = {**_task(config, "failed", {}), "LastFailureMessage": "Error connecting to MongoDB: auth failed", "StopReason": "FATAL_ERROR"}
    _describe(stubber, failed)
    status = dms_engine.task_status(client, STUB_SETTINGS, config)
    assert (status.status, status.reason) == ("failed", "Error connecting to MongoDB: auth failed")


def test_a_running_task_that_fails_to_stop_names_the_reason(stubbed):
    client, stubber = stubbed
    config = _config("orders")
    _describe(stubber, _task(config, "running", {}))
    stubber.add_response("stop_replication_task", {"ReplicationTask": _task(config, "stopping", {})})
    failed = {**_task(config, "failed", {}), "LastFailureMessage": "DynamoDB throttled"}
    _describe(stubber, failed, **BY_ARN)
    _describe(stubber, failed)
    with pytest.raises(dms_engine.DmsError, match=r"did not become stopped: it is failed \(DynamoDB throttled\).*clear this task") as raised:
        dms_engine.stop_task(client, STUB_SETTINGS, config)
    assert not isinstance(raised.value, dms_engine.DmsTimeout)


def test_changed_endpoint_settings_are_modified_and_defaults_ignored(stubbed):
    client, stubber = stubbed
    config = _config("orders")
    endpoint_id = dms_engine.identifier(STUB_SETTINGS, config, "dynamodb-target")
    described = {
        "EndpointIdentifier": endpoint_id,
        "EndpointArn": TARGET_ARN,
        # DMS answers with the type in capitals and with settings of its own.
        "EndpointType": "TARGET",
        "EngineName": "dynamodb",
        "Status": "active",
        "DynamoDbSettings": {"ServiceAccessRoleArn": "arn:aws:iam::123456789012:role/old"},
        "SslMode": "none",
    }
    stubber.add_response("describe_endpoints", {"Endpoints": [described]}, {"Filters": [{"Name": "endpoint-id", "Values": [endpoint_id]}]})
    stubber.add_response(
        "modify_endpoint",
        {"Endpoint": described},
        {"EndpointArn": TARGET_ARN, "EngineName": "dynamodb", "DynamoDbSettings": {"ServiceAccessRoleArn": STUB_SETTINGS.target_role_arn}},
    )
    facts = dms_engine.ensure_target_endpoint(client, STUB_SETTINGS, config)
    assert (facts["created"], facts["modified"]) == (False, ["DynamoDbSettings"])

    stubber.add_response(
        "describe_endpoints",
        {"Endpoints": [{**described, "DynamoDbSettings": {"ServiceAccessRoleArn": STUB_SETTINGS.target_role_arn}}]},
    )
    assert dms_engine.ensure_target_endpoint(client, STUB_SETTINGS, config)["modified"] == []


def test_not_found_fault_means_create(stubbed):
    client, stubber = stubbed
    config = _config("orders")
    stubber.add_client_error("describe_endpoints", "ResourceNotFoundFault", "No Endpoints found matching provided filters")
    stubber.add_response(
        "create_endpoint",
        {"Endpoint": {"EndpointArn": TARGET_ARN}},
        {
            "EndpointIdentifier": dms_engine.identifier(STUB_SETTINGS, config, "dynamodb-target"),
            "EndpointType": "target",
            "EngineName": "dynamodb",
            "DynamoDbSettings": {"ServiceAccessRoleArn": STUB_SETTINGS.target_role_arn},
            "Tags": [{"Key": "dynamo2mongo:table", "Value": "orders"}],
        },
    )
    assert dms_engine.ensure_target_endpoint(client, STUB_SETTINGS, config)["created"] is True


def test_a_changed_endpoint_is_tested_again_and_a_failure_names_it(stubbed):
    client, stubber = stubbed
    config = _config("orders")
    endpoint = {"identifier": "dynamo2mongo-orders-mongodb-source", "arn": SOURCE_ARN, "created": False, "modified": [], "secret_changed": True}
    connection = {"EndpointArn": SOURCE_ARN, "ReplicationInstanceArn": STUB_SETTINGS.replication_instance_arn, "Status": "successful"}
    stubber.add_response("describe_connections", {"Connections": [connection]})
    stubber.add_response(
        "test_connection",
        {"Connection": {**connection, "Status": "testing"}},
        {"ReplicationInstanceArn": STUB_SETTINGS.replication_instance_arn, "EndpointArn": SOURCE_ARN},
    )
    failed = {**connection, "Status": "failed", "LastFailureMessage": "Authentication failed for user dms"}
    stubber.add_response("describe_connections", {"Connections": [failed]})
    stubber.add_response("describe_connections", {"Connections": [failed]})
    with pytest.raises(dms_engine.DmsError, match=r"endpoint dynamo2mongo-orders-mongodb-source .*Authentication failed for user dms"):
        dms_engine.check_connections(client, STUB_SETTINGS, config, [endpoint])
