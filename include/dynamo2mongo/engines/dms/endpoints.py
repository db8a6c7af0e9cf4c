"""The task's two endpoints: the MongoDB source (its credentials in the secret) and the DynamoDB
target, each tested from the replication instance when new or changed."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError, WaiterError

from dynamo2mongo.aws_errors import error_code
from dynamo2mongo.config import DmsConfig, TableConfig
from dynamo2mongo.engines.dms.resources import (
    TAG_TABLE,
    DmsError,
    DmsTimeout,
    contains,
    identifier,
    required,
    source_secret_id,
    waiter_config,
)
from dynamo2mongo.engines.dms.source import MongoSource, ensure_source_secret
from dynamo2mongo.engines.waiters import timed_out

ENGINE_SOURCE = "mongodb"
ENGINE_TARGET = "dynamodb"


def _find_endpoint(dms: Any, endpoint_id: str) -> dict[str, Any] | None:
    try:
        found = dms.describe_endpoints(Filters=[{"Name": "endpoint-id", "Values": [endpoint_id]}])["Endpoints"]
    except ClientError as error:
        # DMS answers a filter that matches nothing with ResourceNotFoundFault.
        if error_code(error) == "ResourceNotFoundFault":
            return None
        raise
    return found[0] if found else None


def _ensure_endpoint(dms: Any, endpoint_id: str, wanted: dict[str, Any], config: TableConfig) -> dict[str, Any]:
    current = _find_endpoint(dms, endpoint_id)
    facts: dict[str, Any] = {"identifier": endpoint_id, "created": False, "modified": []}
    if current is None:
        created = dms.create_endpoint(
            EndpointIdentifier=endpoint_id, Tags=[{"Key": TAG_TABLE, "Value": config.name}], **wanted
        )["Endpoint"]
        return {**facts, "arn": created["EndpointArn"], "created": True}
    kind = (str(current.get("EndpointType", "")).lower(), current.get("EngineName"))
    if kind != (wanted["EndpointType"], wanted["EngineName"]):
        raise DmsError(
            f"table {config.name!r}: DMS endpoint {endpoint_id} exists as a {kind[0]} {kind[1]} endpoint, not a "
            f"{wanted['EndpointType']} {wanted['EngineName']} one; something else made it: delete it, or set "
            f"dms.identifier_prefix to another value"
        )
    # The type was compared above: DMS answers it in capitals.
    differs = [k for k, v in wanted.items() if k != "EndpointType" and not contains(current.get(k), v)]
    if differs:
        # ExactSettings defaults to merging, which is what the comparison assumes.
        dms.modify_endpoint(EndpointArn=current["EndpointArn"], **{k: v for k, v in wanted.items() if k != "EndpointType"})
    return {**facts, "arn": current["EndpointArn"], "modified": differs}


def source_endpoint_settings(
    settings: DmsConfig, config: TableConfig, source: MongoSource, secret_arn: str
) -> dict[str, Any]:
    """CreateEndpoint arguments of the MongoDB source (the credentials are in the secret, not here)."""
    mongo: dict[str, Any] = {
        "DatabaseName": config.database,
        "NestingLevel": "one",
        "DocsToInvestigate": str(settings.docs_to_investigate),
        # Without it an update event carries only the changed fields: the item would lose the others,
        # and a mark that did not change would not be there to filter on.
        "UseUpdateLookUp": True,
        "SecretsManagerSecretId": secret_arn,
        "SecretsManagerAccessRoleArn": required(
            settings, "secrets_access_role_arn", config, "DMS needs a role to read the MongoDB credentials secret"
        ),
        "AuthType": "password" if source.username else "no",
    }
    if source.username:
        mongo.update(AuthSource=source.auth_source, AuthMechanism=source.auth_mechanism)
    return {
        "EndpointType": "source",
        "EngineName": ENGINE_SOURCE,
        "SslMode": "require" if source.tls else "none",
        "MongoDbSettings": mongo,
    }


def ensure_source_endpoint(
    dms: Any, secretsmanager: Any, settings: DmsConfig, config: TableConfig, source: MongoSource
) -> dict[str, Any]:
    """The MongoDB source endpoint, its credentials written to the Secrets Manager secret first."""
    secret = ensure_source_secret(secretsmanager, source_secret_id(settings, config), source.secret_string(), config.name)
    wanted = source_endpoint_settings(settings, config, source, secret["arn"])
    endpoint = _ensure_endpoint(dms, identifier(settings, config, "mongodb-source"), wanted, config)
    # A new secret version changes nothing DMS can see in the endpoint, yet its connection must be tested again.
    return {**endpoint, "secret_arn": secret["arn"], "secret_changed": secret["created"] or secret["updated"]}


def ensure_target_endpoint(dms: Any, settings: DmsConfig, config: TableConfig) -> dict[str, Any]:
    """The DynamoDB target endpoint, writing with the configured service role."""
    role = required(settings, "target_role_arn", config, "DMS needs a role allowed to write the DynamoDB table")
    wanted = {"EndpointType": "target", "EngineName": ENGINE_TARGET, "DynamoDbSettings": {"ServiceAccessRoleArn": role}}
    return {**_ensure_endpoint(dms, identifier(settings, config, "dynamodb-target"), wanted, config), "secret_changed": False}


def _connection(dms: Any, instance_arn: str, endpoint_arn: str) -> dict[str, Any] | None:
    try:
        found = dms.describe_connections(
            Filters=[
                {"Name": "replication-instance-arn", "Values": [instance_arn]},
                {"Name": "endpoint-arn", "Values": [endpoint_arn]},
            ]
        )["Connections"]
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundFault":
            return None
        raise
    return next((c for c in found if c.get("EndpointArn") == endpoint_arn), None)


def check_connections(dms: Any, settings: DmsConfig, config: TableConfig, endpoints: list[dict[str, Any]]) -> list[str]:
    """Test each endpoint from the replication instance unless its last test succeeded and nothing about it
    changed since; fail naming the endpoint and DMS's message. Returns the identifiers tested."""
    instance = required(settings, "replication_instance_arn", config, "the endpoints are tested from it")
    tested = []
    for endpoint in endpoints:
        last = _connection(dms, instance, endpoint["arn"])
        changed = endpoint["created"] or endpoint["modified"] or endpoint["secret_changed"]
        if last is not None and last.get("Status") == "successful" and not changed:
            continue
        if last is None or last.get("Status") != "testing":
            dms.test_connection(ReplicationInstanceArn=instance, EndpointArn=endpoint["arn"])
        tested.append(endpoint)
    for endpoint in tested:
        try:
            dms.get_waiter("test_connection_succeeds").wait(
                Filters=[
                    {"Name": "replication-instance-arn", "Values": [instance]},
                    {"Name": "endpoint-arn", "Values": [endpoint["arn"]]},
                ],
                WaiterConfig=waiter_config(settings),
            )
        except WaiterError as error:
            last = _connection(dms, instance, endpoint["arn"]) or {}
            raise (DmsTimeout if timed_out(error) else DmsError)(
                f"table {config.name!r}: DMS cannot connect to endpoint {endpoint['identifier']} from the replication "
                f"instance ({last.get('Status', 'unknown')}: {last.get('LastFailureMessage') or error}). Check the "
                f"network path (security groups, Atlas IP access list), the credentials secret and the roles, then clear "
                f"this task"
            ) from None
    return [e["identifier"] for e in tested]
