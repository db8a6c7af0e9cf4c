"""Backward sync on AWS DMS (DESIGN §2 and §6, ``sync.backward: dms``): a MongoDB source endpoint whose
credentials live in Secrets Manager, a DynamoDB target endpoint, and a CDC-only replication task.

Every ``ensure_*`` function finds its resource by identifier, compares it with what the configuration
asks for and changes only the difference, so a second deployment with the same settings calls no
Create/Modify API at all.

The functions take the table's ``dms`` section (``settings``) apart from the table's configuration
because in the sandbox it is not ``config.dms`` as written: ``sandbox_settings`` fills in the
replication instance and roles it makes in the emulator.

Why table mode (``NestingLevel: one``) and not document mode. In document mode DMS hands the target a
single ``_doc`` column holding the whole document (plus ``_id`` with ``ExtractDocId``); the DynamoDB
target writes it as one string attribute, and the key attributes and the forward mark stay buried in a
LOB that neither an object mapping nor a source filter can address ("Don't apply filters to LOB
columns"). In table mode every top-level field becomes a column, so the key fields can be the item's
partition and sort key and scalar fields keep their type (string -> S; int, long, double -> N;
boolean -> BOOL). It is the only mode in which DMS can write an item of the table's shape at all, and
the only one that exposes ``_ddb.sync.src`` as a column to filter on. What table mode cannot do (AWS
DMS User Guide, "Using MongoDB as a source for AWS DMS" and "Using an Amazon DynamoDB database as a
target"):

- nested documents are flattened into columns named ``a.b.c``, which become attributes of that name,
  not maps; arrays (and so our sets, stored as arrays with a type hint) become JSON text (CLOB -> S);
- the columns are fixed from a sample of ``DocsToInvestigate`` documents when the task starts: a field
  that none of them carries is not replicated;
- BSON types outside DMS's MongoDB type table (Decimal128 among them) and Binary (a BLOB, while the
  DynamoDB target takes no LOB but CLOB) cannot be written; dates become strings; the reversible
  ``%`` encoding of attribute names is not decoded;
- the echo filter rests on DMS honouring a source filter on a flattened MongoDB column. The newest copy
  of the MongoDB source page we could read lists "Source filters are not supported for MongoDB" among
  its limitations, and "Using source filters" asks for immutable columns (the mark is not). A task
  that ignores the filter writes every forward-synced document back, and since table mode changes the
  item's shape, that write is a real change that forward sync then copies to MongoDB: check the filter
  on a staging table before choosing this engine.

The change-stream relay (``sync.backward: relay``) has none of these limits, and it adds what DMS
cannot: the echo ledger, the conflict policy and per-key ordering (DESIGN §6).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import ClientError, WaiterError
from botocore.waiter import WaiterModel, create_waiter_with_client
from pymongo import uri_parser
from pymongo.errors import ConfigurationError, InvalidURI

from dynamo2mongo.config import DmsConfig, TableConfig
from dynamo2mongo.mapping.keys import key_fields
from dynamo2mongo.engines.secrets import ensure_secret
from dynamo2mongo.mapping import RESERVED
from dynamo2mongo.errors import Permanent, Transient

MIGRATION_TYPE = "cdc"
ENGINE_SOURCE = "mongodb"
ENGINE_TARGET = "dynamodb"
TAG_TABLE = "dynamo2mongo:table"
SANDBOX_INSTANCE = "dynamo2mongo-sandbox"
SANDBOX_ROLE = "dynamo2mongo-dms-sandbox"
_DMS_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "dms.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
# MongoDB's authMechanism names and DMS's AuthMechanismValue; DMS offers no other mechanism.
_AUTH_MECHANISMS = {None: "default", "SCRAM-SHA-1": "scram_sha_1", "MONGODB-CR": "mongodb_cr"}
# The columns table mode makes of the reserved field (mapping.to_bson and sync.forward write exactly these).
# "Object ID and array type keys are converted to columns that are prefixed with oid and array in
# table mode": how the prefix combines with a flattened name is not documented, so both spellings of
# the hint array are excluded.
_RESERVED_COLUMNS = tuple(
    f"{RESERVED}.{name}" for name in ("t", "sync.src", "sync.h", "sync.seq", "sync.at")
) + (f"array_{RESERVED}.t",)
_MARK_COLUMN = f"{RESERVED}.sync.src"
_SETTLED_STATES = ("ready", "stopped", "running")
# DMS refuses Start/Stop/Modify while a task is in one of these; they end on their own.
_TRANSITIONS = ("creating", "modifying", "starting", "stopping", "testing", "moving")
_SETTLED = WaiterModel(
    {
        "version": 2,
        "waiters": {
            "ReplicationTaskSettled": {
                "operation": "DescribeReplicationTasks",
                "delay": 15,
                "maxAttempts": 120,
                "acceptors": [
                    *(
                        {"matcher": "pathAll", "argument": "ReplicationTasks[].Status", "expected": s, "state": "success"}
                        for s in _SETTLED_STATES
                    ),
                    *(
                        {"matcher": "pathAny", "argument": "ReplicationTasks[].Status", "expected": s, "state": "failure"}
                        for s in ("failed", "failed-move", "deleting")
                    ),
                ],
            }
        },
    }
)


class DmsError(Permanent, RuntimeError):
    """Backward sync on DMS cannot be deployed or operated; the message names the table, the resource
    and what to do. A retry does not help."""


class DmsTimeout(Transient, DmsError):
    """A DMS resource did not reach the state waited for in time; a retry may."""


def _waiter_config(settings: DmsConfig) -> dict[str, int]:
    return {"Delay": settings.poll_seconds, "MaxAttempts": max(1, settings.max_wait_seconds // settings.poll_seconds)}


@dataclass(frozen=True)
class MongoSource:
    """Where DMS connects: one member of the replica set, and the credentials (kept out of ``repr``)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    auth_source: str = "admin"
    auth_mechanism: str = "default"
    tls: bool = False

    def secret_string(self) -> str:
        """The secret's value: the keys DMS reads from an endpoint secret (host, port, username, password)."""
        value: dict[str, Any] = {"host": self.host, "port": self.port}
        if self.username:
            value.update(username=self.username, password=self.password or "")
        return json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class TaskStatus:
    """A replication task's status for sensors and logs; ``reason`` from LastFailureMessage or StopReason."""

    arn: str
    identifier: str
    status: str
    reason: str | None = None


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


# ---- names -------------------------------------------------------------------------------------


_NOT_IN_IDENTIFIER = re.compile(r"[^A-Za-z0-9-]+")
_MAX_IDENTIFIER = 255


def identifier(settings: DmsConfig, config: TableConfig, role: str) -> str:
    """A DMS identifier (letters, digits, single hyphens, starting with a letter) for one of the table's
    resources; a short hash of the raw name keeps two table names that clean up alike apart, and the
    role stays last whatever is cut."""
    raw = f"{settings.identifier_prefix}-{config.name}"
    body = re.sub(r"-{2,}", "-", _NOT_IN_IDENTIFIER.sub("-", raw)).strip("-")
    if not body[:1].isalpha():
        body = f"d-{body}"
    if body == raw and len(raw) + 1 + len(role) <= _MAX_IDENTIFIER:
        return f"{raw}-{role}"
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:8]
    room = _MAX_IDENTIFIER - len(digest) - len(role) - 2
    return f"{body[:room].rstrip('-')}-{digest}-{role}"


def source_secret_id(settings: DmsConfig, config: TableConfig) -> str:
    return settings.source_secret_id or f"dynamo2mongo/{config.name}/dms-mongodb-source"


def _required(settings: DmsConfig, key: str, config: TableConfig, why: str) -> str:
    value = getattr(settings, key)
    if not value:
        raise DmsError(f"table {config.name!r}: 'dms.{key}' is not set; {why}")
    return value


# ---- the MongoDB connection --------------------------------------------------------------------


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def mongo_source(uri: str, options: dict[str, Any], table: str) -> MongoSource:
    """Where and how DMS connects, from the URI and client options of the table's Mongo connection.

    DMS takes one server name ("For MongoDB Atlas, provide the server name for any of the servers in
    the replication set"), so the first member is used; ``mongodb+srv://`` names are resolved here.
    Neither the URI nor the parser's message goes into an error: the URI holds the password.
    """
    try:
        parsed = uri_parser.parse_uri(uri)
    except (InvalidURI, ConfigurationError, ValueError) as error:
        raise DmsError(
            f"table {table!r}: the URI of the Mongo connection cannot be parsed ({type(error).__name__}); fix the "
            f"connection's host, port, login or extras"
        ) from None
    merged = {str(k).lower(): v for k, v in parsed["options"].items()}
    merged.update({str(k).lower(): v for k, v in options.items()})
    host, port = parsed["nodelist"][0]
    mechanism = merged.get("authmechanism")
    if mechanism not in _AUTH_MECHANISMS:
        raise DmsError(
            f"table {table!r}: the Mongo connection authenticates with {mechanism}, which DMS does not offer "
            f"(it knows SCRAM-SHA-1 and MONGODB-CR only); give the connection a SCRAM-SHA-1 user for DMS, or use "
            f"sync.backward: relay"
        )
    return MongoSource(
        host=host,
        port=int(port),
        username=parsed.get("username"),
        password=parsed.get("password"),
        auth_source=str(merged.get("authsource") or parsed.get("database") or "admin"),
        auth_mechanism=_AUTH_MECHANISMS[mechanism],
        tls=uri.startswith("mongodb+srv://") or _flag(merged.get("tls")) or _flag(merged.get("ssl")),
    )


def ensure_source_secret(secretsmanager: Any, secret_id: str, value: str, table: str) -> dict[str, Any]:
    """Create the secret, or store a new version when its content differs; returns its ARN and what changed."""
    return ensure_secret(
        secretsmanager,
        secret_id,
        value,
        description="MongoDB host, port and credentials of dynamo2mongo's DMS source endpoint (written by its deploy task)",
        purpose="the DMS source endpoint",
        setting="dms.source_secret_id",
        fail=lambda message: DmsError(f"table {table!r}: {message}"),
    )


# ---- endpoints ---------------------------------------------------------------------------------


def _contains(current: Any, wanted: Any) -> bool:
    """Whether ``current`` holds everything ``wanted`` says; DMS answers with defaults filled in."""
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(_contains(current.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(current, list) and all(any(_contains(c, w) for c in current) for w in wanted)
    return current == wanted


def _find_endpoint(dms: Any, endpoint_id: str) -> dict[str, Any] | None:
    try:
        found = dms.describe_endpoints(Filters=[{"Name": "endpoint-id", "Values": [endpoint_id]}])["Endpoints"]
    except ClientError as error:
        # DMS answers a filter that matches nothing with ResourceNotFoundFault.
        if _code(error) == "ResourceNotFoundFault":
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
    differs = [k for k, v in wanted.items() if k != "EndpointType" and not _contains(current.get(k), v)]
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
        "SecretsManagerAccessRoleArn": _required(
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
    role = _required(settings, "target_role_arn", config, "DMS needs a role allowed to write the DynamoDB table")
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
        if _code(error) == "ResourceNotFoundFault":
            return None
        raise
    return next((c for c in found if c.get("EndpointArn") == endpoint_arn), None)


def check_connections(dms: Any, settings: DmsConfig, config: TableConfig, endpoints: list[dict[str, Any]]) -> list[str]:
    """Test each endpoint from the replication instance unless its last test succeeded and nothing about it
    changed since; fail naming the endpoint and DMS's message. Returns the identifiers tested."""
    instance = _required(settings, "replication_instance_arn", config, "the endpoints are tested from it")
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
                WaiterConfig=_waiter_config(settings),
            )
        except WaiterError as error:
            last = _connection(dms, instance, endpoint["arn"]) or {}
            timed_out = "Max attempts exceeded" in str(error)
            raise (DmsTimeout if timed_out else DmsError)(
                f"table {config.name!r}: DMS cannot connect to endpoint {endpoint['identifier']} from the replication "
                f"instance ({last.get('Status', 'unknown')}: {last.get('LastFailureMessage') or error}). Check the "
                f"network path (security groups, Atlas IP access list), the credentials secret and the roles, then clear "
                f"this task"
            ) from None
    return [e["identifier"] for e in tested]


# ---- table mappings ----------------------------------------------------------------------------


def table_mappings(config: TableConfig, key_attrs: tuple[str, ...], key_types: dict[str, str]) -> dict[str, Any]:
    """The task's table mappings (selection with the mark filter, object mapping to the DynamoDB table).

    - Selection: the collection (``schema-name`` is the database), with a source filter that keeps only
      documents whose ``_ddb.sync.src`` column is NULL. "If more than one filter condition is used within
      a single filter, the list ... is combined as if using an OR", but a negative operator (``noteq``)
      must stand alone in its filter, and under DMS's SQLite comparison rules ``noteq`` is not true for
      NULL: it would drop every document the application creates. The import (baseline mark) and
      forward sync write only ``"dynamodb"`` there, so "is NULL" is "not marked": an application write
      reaches DynamoDB only if it removes ``_ddb.sync`` (a ``$set`` of other fields keeps it).
    - Object mapping, ``map-record-to-record``: every column becomes an attribute except those listed in
      ``exclude-columns`` (``_id`` and its flattened parts, the ``_ddb`` columns); ``partition-key-name``
      and ``sort-key-name`` name the key attributes. A string key also gets an explicit scalar ``string``
      attribute mapping from its column; DMS documents no numeric ``attribute-sub-type``, so a number
      key keeps the type of its own column (int/long/double -> N). Binary keys cannot be written at all.
    """
    if not key_attrs or len(key_attrs) > 2:
        raise DmsError(f"table {config.name!r}: expected a hash key and an optional range key, got {key_attrs!r}")
    columns = key_fields(key_attrs)
    for name in key_attrs:
        if key_types.get(name) == "B":
            raise DmsError(
                f"table {config.name!r}: key attribute {name!r} is binary; DMS reads MongoDB Binary as a BLOB and its "
                f"DynamoDB target takes no LOB but CLOB, so it cannot write these items: use sync.backward: relay"
            )
    locator = {"schema-name": config.database, "table-name": config.collection}
    exclude = ["_id", *(f"_id.{column}" for column in columns if len(columns) == 2), *_RESERVED_COLUMNS]
    parameters: dict[str, Any] = {"partition-key-name": key_attrs[0]}
    if len(key_attrs) == 2:
        parameters["sort-key-name"] = key_attrs[1]
    parameters["exclude-columns"] = exclude
    parameters["attribute-mappings"] = [
        {
            "target-attribute-name": name,
            "attribute-type": "scalar",
            "attribute-sub-type": "string",
            "value": "${" + column + "}",
        }
        for name, column in zip(key_attrs, columns)
        if key_types.get(name, "S") == "S"
    ]
    return {
        "rules": [
            {
                "rule-type": "selection",
                "rule-id": "1",
                "rule-name": "collection",
                "object-locator": locator,
                "rule-action": "include",
                "filters": [
                    {
                        "filter-type": "source",
                        "column-name": _MARK_COLUMN,
                        "filter-conditions": [{"filter-operator": "null"}],
                    }
                ],
            },
            {
                "rule-type": "object-mapping",
                "rule-id": "2",
                "rule-name": "item",
                "rule-action": "map-record-to-record",
                "object-locator": locator,
                "target-table-name": config.source_table,
                "mapping-parameters": parameters,
            },
        ]
    }


def task_settings() -> dict[str, Any]:
    """The ReplicationTaskSettings we decide (DMS fills in the rest)."""
    component = {"Severity": "LOGGER_SEVERITY_DEFAULT"}
    return {
        # The target is the application's live table: DMS must never drop or truncate it.
        "FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING"},
        # Limited LOB mode truncates JSON text (arrays) past LobMaxSize; full LOB mode does not.
        "TargetMetadata": {"SupportLobs": True, "FullLobMode": True, "LobChunkSize": 64, "BatchApplyEnabled": False},
        "Logging": {
            "EnableLogging": True,
            "LogComponents": [{"Id": c, **component} for c in ("SOURCE_CAPTURE", "TARGET_APPLY", "TASK_MANAGER")],
        },
        "ErrorBehavior": {
            # Stop rather than skip: a skipped change is a lost write, found only at verification.
            "DataErrorPolicy": "STOP_TASK",
            "DataTruncationErrorPolicy": "STOP_TASK",
            "TableErrorPolicy": "STOP_TASK",
            # The item usually exists already (it came from DynamoDB) or is gone: apply the change anyway.
            "ApplyErrorInsertPolicy": "UPDATE_RECORD",
            "ApplyErrorUpdatePolicy": "UPDATE_RECORD",
            "ApplyErrorDeletePolicy": "IGNORE_RECORD",
        },
    }


# ---- the replication task ----------------------------------------------------------------------


def _describe_task(dms: Any, task_id: str) -> dict[str, Any] | None:
    try:
        found = dms.describe_replication_tasks(Filters=[{"Name": "replication-task-id", "Values": [task_id]}])[
            "ReplicationTasks"
        ]
    except ClientError as error:
        if _code(error) == "ResourceNotFoundFault":
            return None
        raise
    return found[0] if found else None


def _task(dms: Any, task_id: str, config: TableConfig) -> dict[str, Any]:
    task = _describe_task(dms, task_id)
    if task is None:
        raise DmsError(
            f"table {config.name!r}: DMS replication task {task_id} does not exist; run the backward-sync deploy task first"
        )
    return task


def _reason(task: dict[str, Any]) -> str | None:
    return task.get("LastFailureMessage") or task.get("StopReason") or None


def _wait(dms: Any, waiter: Any, task: dict[str, Any], settings: DmsConfig, config: TableConfig, goal: str) -> None:
    try:
        waiter.wait(
            Filters=[{"Name": "replication-task-arn", "Values": [task["ReplicationTaskArn"]]}],
            WithoutSettings=True,
            WaiterConfig=_waiter_config(settings),
        )
    except WaiterError as error:
        now = _describe_task(dms, task["ReplicationTaskIdentifier"]) or {}
        timed_out = "Max attempts exceeded" in str(error)
        raise (DmsTimeout if timed_out else DmsError)(
            f"table {config.name!r}: DMS replication task {task['ReplicationTaskIdentifier']} did not become {goal}: it "
            f"is {now.get('Status', 'gone')}"
            + (f" ({_reason(now)})" if _reason(now) else "")
            + ". Its CloudWatch log (dms-tasks-<instance>) says why; fix the cause, then clear this task"
        ) from None


def _wait_settled(dms: Any, task: dict[str, Any], settings: DmsConfig, config: TableConfig) -> None:
    _wait(dms, create_waiter_with_client("ReplicationTaskSettled", _SETTLED, dms), task, settings, config, "ready")


def ensure_replication_task(
    dms: Any,
    settings: DmsConfig,
    config: TableConfig,
    source_arn: str,
    target_arn: str,
    mappings: dict[str, Any],
) -> dict[str, Any]:
    """The CDC-only task; a task whose mappings or settings differ is modified, stopping it first when it
    runs and resuming it from its checkpoint afterwards (nothing captured meanwhile is lost)."""
    instance = _required(settings, "replication_instance_arn", config, "the replication task runs on it")
    task_id = identifier(settings, config, "backward")
    wanted = {
        "MigrationType": MIGRATION_TYPE,
        "TableMappings": json.dumps(mappings, sort_keys=True),
        "ReplicationTaskSettings": json.dumps(task_settings(), sort_keys=True),
    }
    facts: dict[str, Any] = {"identifier": task_id, "created": False, "modified": [], "restarted": False}
    current = _describe_task(dms, task_id)
    if current is None:
        created = dms.create_replication_task(
            ReplicationTaskIdentifier=task_id,
            SourceEndpointArn=source_arn,
            TargetEndpointArn=target_arn,
            ReplicationInstanceArn=instance,
            Tags=[{"Key": TAG_TABLE, "Value": config.name}],
            **wanted,
        )["ReplicationTask"]
        return {**facts, "arn": created["ReplicationTaskArn"], "created": True, "status": created.get("Status")}
    bound = {
        "ReplicationInstanceArn": instance,
        "SourceEndpointArn": source_arn,
        "TargetEndpointArn": target_arn,
    }
    moved = [key for key, value in bound.items() if current.get(key) != value]
    if moved:
        raise DmsError(
            f"table {config.name!r}: DMS replication task {task_id} uses another {', '.join(moved)} than the "
            f"configuration ({', '.join(f'{k}={current.get(k)}' for k in moved)}). A task's endpoints cannot be "
            f"changed: delete the task (its CDC checkpoint goes with it) and deploy again, or move it to the "
            f"configured instance with 'aws dms move-replication-task'"
        )
    differs = []
    if current.get("MigrationType") != MIGRATION_TYPE:
        differs.append("MigrationType")
    # Mappings are compared whole: a rule DMS still holds but the configuration dropped must go.
    if json.loads(current.get("TableMappings") or "{}") != mappings:
        differs.append("TableMappings")
    if not _contains(json.loads(current.get("ReplicationTaskSettings") or "{}"), task_settings()):
        differs.append("ReplicationTaskSettings")
    facts.update(arn=current["ReplicationTaskArn"], status=current.get("Status"), modified=differs)
    if not differs:
        return facts
    was_running = current.get("Status") in ("running", "starting")
    if was_running:
        stop_task(dms, settings, config)
    elif current.get("Status") in _TRANSITIONS:
        _wait_settled(dms, current, settings, config)
    dms.modify_replication_task(ReplicationTaskArn=current["ReplicationTaskArn"], **{k: wanted[k] for k in differs})
    _wait_settled(dms, current, settings, config)
    if was_running:
        resume_task(dms, settings, config)
        facts["restarted"] = True
    facts["status"] = (_describe_task(dms, task_id) or {}).get("Status")
    return facts


def _start(
    dms: Any, task: dict[str, Any], start_type: str, settings: DmsConfig, config: TableConfig, wait: bool
) -> None:
    try:
        dms.start_replication_task(ReplicationTaskArn=task["ReplicationTaskArn"], StartReplicationTaskType=start_type)
    except ClientError as error:
        if _code(error) != "InvalidResourceStateFault":
            raise
        # Still being created or modified: DMS takes the start once that is over.
        _wait_settled(dms, task, settings, config)
        dms.start_replication_task(ReplicationTaskArn=task["ReplicationTaskArn"], StartReplicationTaskType=start_type)
    if wait:
        _wait(dms, dms.get_waiter("replication_task_running"), task, settings, config, "running")


def start_task(dms: Any, settings: DmsConfig, config: TableConfig, wait: bool = True) -> str | None:
    """Start backward sync; returns the StartReplicationTaskType used, or None when it already runs.

    A task that never ran starts with ``start-replication`` (CDC from now). A task that ran before is
    resumed from its checkpoint (``resume-processing``): starting it afresh would skip every change
    made while it was stopped. ``wait=False`` returns once DMS took the request (a sensor waits).
    """
    task = _task(dms, identifier(settings, config, "backward"), config)
    status = task.get("Status")
    if status in ("running", "starting"):
        if status == "starting" and wait:
            _wait(dms, dms.get_waiter("replication_task_running"), task, settings, config, "running")
        return None
    if status == "stopping":
        _wait(dms, dms.get_waiter("replication_task_stopped"), task, settings, config, "stopped")
    start_type = "resume-processing" if task.get("ReplicationTaskStartDate") else "start-replication"
    _start(dms, task, start_type, settings, config, wait)
    return start_type


def resume_task(dms: Any, settings: DmsConfig, config: TableConfig, wait: bool = True) -> bool:
    """Resume a stopped or failed task from its checkpoint; False when it already runs."""
    task = _task(dms, identifier(settings, config, "backward"), config)
    if task.get("Status") in ("running", "starting"):
        if task.get("Status") == "starting" and wait:
            _wait(dms, dms.get_waiter("replication_task_running"), task, settings, config, "running")
        return False
    if not task.get("ReplicationTaskStartDate"):
        raise DmsError(
            f"table {config.name!r}: DMS replication task {task['ReplicationTaskIdentifier']} never ran, so there is "
            f"no checkpoint to resume from; start it with the backward-sync start task"
        )
    if task.get("Status") == "stopping":
        _wait(dms, dms.get_waiter("replication_task_stopped"), task, settings, config, "stopped")
    _start(dms, task, "resume-processing", settings, config, wait)
    return True


def stop_task(dms: Any, settings: DmsConfig, config: TableConfig) -> bool:
    """Stop the task (its checkpoint is kept for a resume); False when it was not running."""
    task = _task(dms, identifier(settings, config, "backward"), config)
    status = task.get("Status")
    if status == "starting":
        _wait(dms, dms.get_waiter("replication_task_running"), task, settings, config, "running")
        status = "running"
    if status == "running":
        dms.stop_replication_task(ReplicationTaskArn=task["ReplicationTaskArn"])
    elif status != "stopping":
        return False
    _wait(dms, dms.get_waiter("replication_task_stopped"), task, settings, config, "stopped")
    return True


def task_status(dms: Any, settings: DmsConfig, config: TableConfig) -> TaskStatus:
    """The task's status ("running", "stopped", "failed", ...) and, when DMS gives one, the reason."""
    task = _task(dms, identifier(settings, config, "backward"), config)
    return TaskStatus(task["ReplicationTaskArn"], task["ReplicationTaskIdentifier"], task.get("Status", ""), _reason(task))


# ---- everything at once ------------------------------------------------------------------------


def deploy(
    dms: Any,
    secretsmanager: Any,
    settings: DmsConfig,
    config: TableConfig,
    source: MongoSource,
    key_attrs: tuple[str, ...],
    key_types: dict[str, str],
) -> dict[str, Any]:
    """Secret, both endpoints (tested from the instance), and the task; safe to repeat. Returns facts
    fit for logs and XCom: ARNs, identifiers and what changed, never a credential."""
    mappings = table_mappings(config, key_attrs, key_types)
    source_endpoint = ensure_source_endpoint(dms, secretsmanager, settings, config, source)
    target_endpoint = ensure_target_endpoint(dms, settings, config)
    tested = check_connections(dms, settings, config, [source_endpoint, target_endpoint])
    task = ensure_replication_task(dms, settings, config, source_endpoint["arn"], target_endpoint["arn"], mappings)
    return {"source_endpoint": source_endpoint, "target_endpoint": target_endpoint, "tested": tested, "task": task}


# ---- the sandbox -------------------------------------------------------------------------------


def sandbox_settings(dms: Any, iam: Any, settings: DmsConfig) -> DmsConfig:
    """Settings for the emulator: a replication instance and a role made there when none is configured.

    The emulator checks neither the role's trust nor the instance's network; the relay does the syncing
    in the sandbox, the DMS calls only exercise the deployment.
    """
    role = settings.target_role_arn or settings.secrets_access_role_arn or _sandbox_role(iam)
    return replace(
        settings,
        replication_instance_arn=settings.replication_instance_arn or _sandbox_instance(dms),
        secrets_access_role_arn=settings.secrets_access_role_arn or role,
        target_role_arn=settings.target_role_arn or role,
    )


def _sandbox_role(iam: Any) -> str:
    try:
        return iam.get_role(RoleName=SANDBOX_ROLE)["Role"]["Arn"]
    except ClientError as error:
        if _code(error) != "NoSuchEntity":
            raise
    return iam.create_role(RoleName=SANDBOX_ROLE, AssumeRolePolicyDocument=json.dumps(_DMS_TRUST))["Role"]["Arn"]


def _sandbox_instance(dms: Any) -> str:
    try:
        found = dms.describe_replication_instances(
            Filters=[{"Name": "replication-instance-id", "Values": [SANDBOX_INSTANCE]}]
        )["ReplicationInstances"]
    except ClientError as error:
        if _code(error) != "ResourceNotFoundFault":
            raise
        found = []
    if found:
        return found[0]["ReplicationInstanceArn"]
    return dms.create_replication_instance(
        ReplicationInstanceIdentifier=SANDBOX_INSTANCE, ReplicationInstanceClass="dms.t3.micro"
    )["ReplicationInstance"]["ReplicationInstanceArn"]
