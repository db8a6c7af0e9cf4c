"""Forward sync on AWS Lambda (DESIGN §2): the deployment package, the function, its event source
mapping, and the facts the lag sensor reads.

The function (include/lambda/handler.py) applies each batch of stream records with the same code as
the relay (dynamo2mongo.sync.forward). The event source mapping does the shard bookkeeping: it reads every
shard from TRIM_HORIZON in order, retries a failed batch from the lowest record the function reports
(ReportBatchItemFailures), bisects batches to isolate a record that keeps failing, and once the retries
are spent hands the batch's description to the on-failure destination instead of dropping it silently.

Every ``ensure_*`` function compares what exists with what the configuration asks for and changes only
the difference, so a redeploy of the same code and settings makes no change at all.

This module is also shipped inside the deployment package (the handler reads ``FunctionSettings``
from it), so it imports nothing the Lambda runtime lacks: the standard library and botocore.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import sys
import time
import urllib.parse
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, WaiterError

from dynamo2mongo.engines.secrets import ensure_secret
from dynamo2mongo.errors import Permanent

if TYPE_CHECKING:
    from dynamo2mongo.config import TableConfig

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
HANDLER_SOURCE = PACKAGE_ROOT.parent / "lambda" / "handler.py"
HANDLER = "handler.handler"
# The packaged C extensions (bson._cbson, pymongo._cmessage) are built for this interpreter: the
# function runs on the same Python version and CPU architecture, so they load there too.
RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
ARCHITECTURE = {"aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower(), "x86_64")
# Installed distributions copied into the package: pymongo's holds the bson and gridfs packages too;
# dnspython resolves mongodb+srv:// (Atlas) URIs; msgspec reads the event's DynamoDB JSON
# (dynamo2mongo.fullload.export.ddbjson). boto3 and botocore come with the Lambda runtime. A new import on the
# handler's path must be added here: the test that runs the package in a clean interpreter finds it.
DISTRIBUTIONS = ("pymongo", "dnspython", "msgspec")
# Not needed by the handler, and not importable on Lambda (Java sources, moto).
EXCLUDED_SUBPACKAGES = ("sandbox",)
# Lambda quotas: a .zip uploaded directly to the API, and the function's code once extracted.
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
# ZIP's earliest date: fixed timestamps (and sorted entries) make the same code the same bytes, hence
# the same CodeSha256, so a redeploy of unchanged code uploads nothing.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

STARTING_POSITION = "TRIM_HORIZON"
_MAPPING_TRANSITIONS = ("Creating", "Enabling", "Disabling", "Updating")
_WAITER = {"Delay": 2, "MaxAttempts": 150}
SANDBOX_ROLE = "dynamo2mongo-forward-sandbox"
_LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


class LambdaDeployError(Permanent, RuntimeError):
    """The forward-sync function cannot be packaged or deployed; the message says what to do."""


# ---- the function's environment ---------------------------------------------------------------


_ENV = {
    "table": "D2M_TABLE",
    "source_table": "D2M_SOURCE_TABLE",
    "key_attrs": "D2M_KEY_ATTRS",
    "database": "D2M_DATABASE",
    "collection": "D2M_COLLECTION",
    "metadata_database": "D2M_METADATA_DATABASE",
    "number_mapping": "D2M_NUMBER_MAPPING",
    "conflict_policy": "D2M_CONFLICT_POLICY",
    "mongo_secret_id": "D2M_MONGO_SECRET_ID",
}


@dataclass(frozen=True)
class FunctionSettings:
    """What the handler needs, carried in the function's environment: the secret's id, never the URI."""

    table: str
    source_table: str
    key_attrs: tuple[str, ...]
    database: str
    collection: str
    metadata_database: str
    number_mapping: str
    conflict_policy: str
    mongo_secret_id: str

    def to_env(self) -> dict[str, str]:
        values = {name: getattr(self, name) for name in _ENV}
        # Attribute names may hold any character, commas included.
        values["key_attrs"] = json.dumps(list(self.key_attrs))
        return {_ENV[name]: value for name, value in values.items()}

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "FunctionSettings":
        missing = [variable for variable in _ENV.values() if not environ.get(variable)]
        if missing:
            raise LambdaDeployError(
                f"the forward-sync function's environment lacks {', '.join(missing)}: redeploy it with the "
                f"DAG's forward-sync deploy task rather than editing it by hand"
            )
        values: dict[str, Any] = {name: environ[variable] for name, variable in _ENV.items()}
        values["key_attrs"] = tuple(json.loads(values["key_attrs"]))
        return cls(**values)


def mongo_secret_id(config: TableConfig) -> str:
    """The configured secret, or in the sandbox (where none is required) one named after the table."""
    return config.forward_lambda.mongo_secret_id or f"dynamo2mongo/{config.name}/mongodb-uri"


def function_settings(config: TableConfig, key_attrs: tuple[str, ...], secret_id: str) -> FunctionSettings:
    return FunctionSettings(
        table=config.name,
        source_table=config.source_table,
        key_attrs=tuple(key_attrs),
        database=config.database,
        collection=config.collection,
        metadata_database=config.metadata_database,
        number_mapping=config.number_mapping,
        conflict_policy=config.sync.conflict_policy,
        mongo_secret_id=secret_id,
    )


def mongo_uri_with_options(uri: str, options: Mapping[str, Any]) -> str:
    """One URI that carries the client options too, for a function that has nothing else to read them from.

    Airflow's Mongo connection keeps options (tls, replicaSet, authSource...) in its extras, which the
    provider's hook passes to MongoClient as keyword arguments; every MongoClient option is also a URI
    option, so they go into the query string.
    """
    if not options:
        return uri
    query = []
    for name, value in sorted(options.items()):
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif not isinstance(value, (str, int, float)):
            raise LambdaDeployError(
                f"the Mongo connection's extra {name!r} ({type(value).__name__}) cannot be written into a URI for the "
                f"forward-sync function; use a plain value (string, number or boolean)"
            )
        # ':' and ',' separate the parts of authMechanismProperties and readPreferenceTags.
        query.append(f"{name}={urllib.parse.quote(str(value), safe=':,')}")
    separator = "&" if "?" in uri else "/?" if uri.count("/") == 2 else "?"
    return uri + separator + "&".join(query)


# ---- the deployment package --------------------------------------------------------------------


def _skipped(path: PurePosixPath) -> bool:
    return "__pycache__" in path.parts or path.suffix == ".pyc"


def _package_files() -> list[tuple[str, Path]]:
    """(name in the zip, file on disk) of everything the function needs, sorted by name."""
    if not HANDLER_SOURCE.is_file():
        raise LambdaDeployError(
            f"the Lambda handler {HANDLER_SOURCE} is missing: install this repository with its include/ directory "
            f"(pip install -e .) where Airflow runs"
        )
    files = {"handler.py": HANDLER_SOURCE}
    for path in PACKAGE_ROOT.rglob("*"):
        relative = PurePosixPath(path.relative_to(PACKAGE_ROOT).as_posix())
        if path.is_file() and relative.parts[0] not in EXCLUDED_SUBPACKAGES and not _skipped(relative):
            files[f"{PACKAGE_ROOT.name}/{relative}"] = path
    for name in DISTRIBUTIONS:
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise LambdaDeployError(
                f"{name} is not installed where Airflow runs; the forward-sync package copies it from there "
                f"(pip install -r requirements.txt)"
            ) from None
        if not distribution.files:
            raise LambdaDeployError(f"the installed {name} lists no files (RECORD is missing): reinstall it with pip")
        for entry in distribution.files:
            relative = PurePosixPath(entry.as_posix())
            # Entries outside site-packages (console scripts) are not importable code.
            if relative.parts[0] == ".." or _skipped(relative):
                continue
            source = Path(distribution.locate_file(entry))
            if source.is_file():
                files[str(relative)] = source
    return sorted(files.items())


def build_package(dest_zip_path: str | os.PathLike) -> Path:
    """Write the forward-sync deployment package to ``dest_zip_path``; returns its path.

    Everything comes from the installed code: handler.py at the root, the dynamo2mongo package (minus
    the sandbox) and the DISTRIBUTIONS from site-packages. Nothing is downloaded.
    The same code always gives the same bytes.
    """
    destination = Path(dest_zip_path)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    unzipped = 0
    with zipfile.ZipFile(partial, "w") as archive:
        for name, source in _package_files():
            data = source.read_bytes()
            unzipped += len(data)
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.create_system = 3  # Unix, so that the permission bits below are honoured
            mode = 0o755 if name.endswith(".so") else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    zipped = partial.stat().st_size
    if zipped > MAX_ZIPPED_BYTES or unzipped > MAX_UNZIPPED_BYTES:
        partial.unlink()
        raise LambdaDeployError(
            f"the forward-sync deployment package is {zipped / 2**20:.1f} MiB zipped and {unzipped / 2**20:.1f} MiB "
            f"unzipped, over Lambda's limits ({MAX_ZIPPED_BYTES / 2**20:.0f} MiB for a direct upload, "
            f"{MAX_UNZIPPED_BYTES / 2**20:.0f} MiB extracted): look for large files that ended up in "
            f"{PACKAGE_ROOT} or in the copied distributions ({', '.join(DISTRIBUTIONS)})"
        )
    partial.replace(destination)
    return destination


def code_sha256(zip_bytes: bytes) -> str:
    """Lambda's CodeSha256 of a .zip package: the base64 of its SHA-256 digest."""
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode("ascii")


# ---- the MongoDB URI secret --------------------------------------------------------------------


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def ensure_mongo_secret(secretsmanager: Any, secret_id: str, mongo_uri: str) -> dict[str, Any]:
    """Create the secret, or store a new version when the URI differs; returns its ARN and what changed."""
    return ensure_secret(
        secretsmanager,
        secret_id,
        mongo_uri,
        description="MongoDB URI of dynamo2mongo's forward-sync Lambda function (written by its deploy task)",
        purpose="the forward-sync function",
        setting="forward_lambda.mongo_secret_id",
        fail=LambdaDeployError,
    )


# ---- the function ------------------------------------------------------------------------------


def ensure_sandbox_role(iam: Any) -> str:
    """A role for the sandbox's function: the emulator checks that the role exists, nothing more."""
    try:
        return iam.get_role(RoleName=SANDBOX_ROLE)["Role"]["Arn"]
    except ClientError as error:
        if _code(error) != "NoSuchEntity":
            raise
    return iam.create_role(RoleName=SANDBOX_ROLE, AssumeRolePolicyDocument=json.dumps(_LAMBDA_TRUST))["Role"]["Arn"]


def _wait(lambda_client: Any, waiter: str, function_name: str) -> None:
    try:
        lambda_client.get_waiter(waiter).wait(FunctionName=function_name, WaiterConfig=_WAITER)
    except WaiterError as error:
        raise LambdaDeployError(
            f"Lambda function {function_name} did not become ready ({waiter}: {error}); its State/LastUpdateStatus "
            f"reason in the Lambda console says why (often the role's permissions or the VPC). Fix it and clear "
            f"this task"
        ) from None


def _function_configuration(config: TableConfig, role_arn: str, settings: FunctionSettings) -> dict[str, Any]:
    return {
        "Role": role_arn,
        "Handler": HANDLER,
        "Runtime": RUNTIME,
        "MemorySize": config.forward_lambda.memory_mb,
        "Timeout": config.forward_lambda.timeout_seconds,
        "Environment": {"Variables": settings.to_env()},
        "Description": (
            f"dynamo2mongo forward sync: DynamoDB {config.source_table} to MongoDB "
            f"{config.database}.{config.collection}"
        )[:256],
    }


def _configuration_differs(current: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    differs = []
    for key, value in wanted.items():
        have = current.get(key)
        if key == "Environment":
            have = {"Variables": (have or {}).get("Variables") or {}}
        if have != value:
            differs.append(key)
    return differs


def ensure_function(
    lambda_client: Any,
    config: TableConfig,
    zip_bytes: bytes,
    secret_arn: str,
    key_attrs: tuple[str, ...],
    role_arn: str | None = None,
) -> dict[str, Any]:
    """Create the forward-sync function, or update its code (when CodeSha256 differs) and configuration
    (when any setting differs); returns its facts.

    ``role_arn`` overrides ``forward_lambda.role_arn`` (the sandbox passes a placeholder role).
    """
    name = config.lambda_function_name
    role = role_arn or config.forward_lambda.role_arn
    if not role:
        raise LambdaDeployError(
            f"table {config.name!r}: forward_lambda.role_arn is not set; the forward-sync function needs an execution "
            f"role: DynamoDB Streams read, dynamodb:PutItem/DeleteItem on {config.source_table} (a dynamodb_wins "
            f"conflict resolution writes back), secretsmanager:GetSecretValue on {secret_arn}, CloudWatch Logs"
        )
    wanted = _function_configuration(config, role, function_settings(config, key_attrs, secret_arn))
    sha = code_sha256(zip_bytes)
    facts = {"function_name": name, "created": False, "code_updated": False, "configuration_updated": []}
    try:
        current = lambda_client.get_function(FunctionName=name)["Configuration"]
    except ClientError as error:
        if _code(error) != "ResourceNotFoundException":
            raise
        lambda_client.create_function(
            FunctionName=name,
            Code={"ZipFile": zip_bytes},
            PackageType="Zip",
            Architectures=[ARCHITECTURE],
            **wanted,
        )
        facts["created"] = True
        _wait(lambda_client, "function_active_v2", name)
    else:
        # Lambda refuses a change while the function is still being created or updated (a previous
        # attempt may have stopped right after asking for one).
        if current.get("State") == "Pending":
            _wait(lambda_client, "function_active_v2", name)
        if current.get("LastUpdateStatus") == "InProgress":
            _wait(lambda_client, "function_updated_v2", name)
        if current.get("CodeSha256") != sha or current.get("Architectures", ["x86_64"]) != [ARCHITECTURE]:
            lambda_client.update_function_code(FunctionName=name, ZipFile=zip_bytes, Architectures=[ARCHITECTURE])
            facts["code_updated"] = True
            _wait(lambda_client, "function_updated_v2", name)
        differs = _configuration_differs(current, wanted)
        if differs:
            lambda_client.update_function_configuration(FunctionName=name, **wanted)
            facts["configuration_updated"] = differs
            _wait(lambda_client, "function_updated_v2", name)
    final = lambda_client.get_function(FunctionName=name)["Configuration"]
    if final.get("CodeSha256") != sha:
        raise LambdaDeployError(
            f"Lambda function {name} reports CodeSha256 {final.get('CodeSha256')} after deploying {sha}: another "
            f"deployment changed it meanwhile; clear this task once that one is done"
        )
    facts.update(
        function_arn=final["FunctionArn"], code_sha256=sha, runtime=final.get("Runtime"), state=final.get("State")
    )
    return facts


# ---- the event source mapping ------------------------------------------------------------------


def mapping_settings(config: TableConfig, enabled: bool = True) -> dict[str, Any]:
    """The mapping's settings that the configuration decides (names as in UpdateEventSourceMapping)."""
    settings: dict[str, Any] = {
        "BatchSize": config.forward_lambda.batch_size,
        "MaximumBatchingWindowInSeconds": config.forward_lambda.batching_window_seconds,
        "ParallelizationFactor": config.forward_lambda.parallelization_factor,
        "MaximumRetryAttempts": config.forward_lambda.maximum_retry_attempts,
        # Splitting a failing batch isolates a poison record, so the others get applied.
        "BisectBatchOnFunctionError": True,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "Enabled": enabled,
    }
    if config.forward_lambda.on_failure_destination:
        settings["DestinationConfig"] = {"OnFailure": {"Destination": config.forward_lambda.on_failure_destination}}
    return settings


def _mapping_differs(current: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    differs = []
    for key, value in wanted.items():
        if key == "Enabled":
            have: Any = current.get("State") in ("Enabled", "Enabling")
        elif key == "DestinationConfig":
            have = ((current.get(key) or {}).get("OnFailure") or {}).get("Destination")
            value = value["OnFailure"]["Destination"]
        else:
            have = current.get(key)
        if have != value:
            differs.append(key)
    return differs


def _settled_mapping(lambda_client: Any, uuid: str, timeout_seconds: float = 300.0) -> dict[str, Any]:
    """The mapping once it is out of Creating/Updating/...; Lambda refuses updates before."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        mapping = lambda_client.get_event_source_mapping(UUID=uuid)
        if mapping.get("State") not in _MAPPING_TRANSITIONS:
            return mapping
        if time.monotonic() > deadline:
            raise LambdaDeployError(
                f"event source mapping {uuid} is still {mapping.get('State')} after {timeout_seconds:.0f} s; check it "
                f"in the Lambda console and clear this task once it settles"
            )
        time.sleep(2)


def ensure_event_source_mapping(
    lambda_client: Any, config: TableConfig, stream_arn: str, function_name: str, enabled: bool = True
) -> dict[str, Any]:
    """The mapping from the table's stream to the function: found, updated where its settings differ,
    or created reading from TRIM_HORIZON. Returns its facts.

    A failure destination removed from the configuration stays on the mapping: Lambda rejects an empty
    one, and keeping it loses nothing (remove it in the console if it must go).
    """
    wanted = mapping_settings(config, enabled)
    pages = lambda_client.get_paginator("list_event_source_mappings").paginate(
        EventSourceArn=stream_arn, FunctionName=function_name
    )
    existing = [m for page in pages for m in page.get("EventSourceMappings", [])]
    if len(existing) > 1:
        raise LambdaDeployError(
            f"stream {stream_arn} has {len(existing)} event source mappings to {function_name} "
            f"({', '.join(m['UUID'] for m in existing)}); each would apply every record. Delete all but one, then "
            f"clear this task"
        )
    if not existing:
        created = lambda_client.create_event_source_mapping(
            EventSourceArn=stream_arn, FunctionName=function_name, StartingPosition=STARTING_POSITION, **wanted
        )
        mapping = _settled_mapping(lambda_client, created["UUID"])
        return _mapping_facts(mapping, created=True, updated=[])
    current = _settled_mapping(lambda_client, existing[0]["UUID"])
    if current.get("StartingPosition") not in (None, STARTING_POSITION):
        raise LambdaDeployError(
            f"event source mapping {current['UUID']} from {stream_arn} to {function_name} starts at "
            f"{current['StartingPosition']}, so it may have skipped records older than itself. Delete it and clear "
            f"this task: the new mapping reads the stream from {STARTING_POSITION} (re-applying is harmless)"
        )
    differs = _mapping_differs(current, wanted)
    if differs:
        lambda_client.update_event_source_mapping(UUID=current["UUID"], FunctionName=function_name, **wanted)
        current = _settled_mapping(lambda_client, current["UUID"])
    return _mapping_facts(current, created=False, updated=differs)


def _mapping_facts(mapping: dict[str, Any], created: bool, updated: list[str]) -> dict[str, Any]:
    return {
        "uuid": mapping["UUID"],
        "state": mapping.get("State"),
        "stream_arn": mapping.get("EventSourceArn"),
        "function_arn": mapping.get("FunctionArn"),
        "batch_size": mapping.get("BatchSize"),
        "created": created,
        "updated": updated,
    }


# ---- lag ---------------------------------------------------------------------------------------


def lambda_lag_facts(
    lambda_client: Any,
    cloudwatch: Any,
    function_name: str,
    mapping_uuid: str | None,
    now: dt.datetime,
    window_minutes: int = 5,
) -> dict[str, Any]:
    """The mapping's state and last processing result, and the largest IteratorAge of the last minutes.

    IteratorAge is the age of the last record of each batch the function received: the largest over
    the window bounds how far behind forward sync is. None when there is no datapoint in the window:
    the mapping read nothing, so nothing was waiting.
    """
    if not mapping_uuid:
        raise LambdaDeployError(
            f"no event source mapping of {function_name} is recorded in the migration state: run (or clear) the "
            f"forward-sync deploy task first"
        )
    try:
        mapping = lambda_client.get_event_source_mapping(UUID=mapping_uuid)
    except ClientError as error:
        if _code(error) != "ResourceNotFoundException":
            raise
        raise LambdaDeployError(
            f"the forward-sync event source mapping {mapping_uuid} of {function_name} no longer exists, so no stream "
            f"record is being applied: clear the forward-sync deploy task to create it again"
        ) from None
    statistics = cloudwatch.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="IteratorAge",
        Dimensions=[{"Name": "FunctionName", "Value": function_name}],
        StartTime=now - dt.timedelta(minutes=window_minutes),
        EndTime=now,
        Period=60,
        Statistics=["Maximum"],
    )
    points = [p["Maximum"] for p in statistics.get("Datapoints", []) if p.get("Maximum") is not None]
    return {
        "uuid": mapping_uuid,
        "function_name": function_name,
        "state": mapping.get("State"),
        "state_transition_reason": mapping.get("StateTransitionReason"),
        "last_processing_result": mapping.get("LastProcessingResult"),
        "iterator_age_seconds": max(points) / 1000.0 if points else None,
        "window_minutes": window_minutes,
    }
