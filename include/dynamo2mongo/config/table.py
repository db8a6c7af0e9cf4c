"""One table's settings: the keys of a ``tables`` entry, their defaults, bounds and choices, declared once.

The same declaration validates the file, writes its JSON schema, and names the settings a run may
override by a trigger-form Param (``RunParam``), so a ``TableConfig`` resolved with a run's Params
(``with_params``) is the whole truth a task or trigger acts on; it travels as ``as_json`` /
``from_json``, never as a table name to look up again.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr
from pydantic import TypeAdapter, ValidationError, with_config

from dynamo2mongo.config.errors import ConfigError, explain, fields_of
from dynamo2mongo.mapping import DATE_MAPPINGS, OBJECT_ID_MAPPINGS, BsonMapping

EXPORT_FORMATS = ("ION", "DYNAMODB_JSON")
NUMBER_MAPPINGS = ("lossless", "double_when_exact")
FORWARD_ENGINES = ("relay", "lambda")
BACKWARD_ENGINES = ("relay", "dms")
CONFLICT_POLICIES = ("dynamodb_wins", "mongodb_wins", "latest_wins")
ENVIRONMENTS = ("sandbox", "aws")
MONGO_TLS = ("required", "optional")
WRITE_CONCERNS = ("majority", "1")

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_MONGO_NAME_FORBIDDEN = re.compile(r'[/\\. "$\x00]')
_DMS_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,39}$")

# Unknown keys are errors: a typo must fail at parse time, not hours into a migration.
STRICT = ConfigDict(extra="forbid")


@dataclasses.dataclass(frozen=True)
class RunParam:
    """Marks a setting that a run may override with the trigger-form Param of this name."""

    name: str


OptionalStr = StrictStr | None


def _must(holds: Callable[[Any], Any], problem: str) -> Callable[[Any], Any]:
    """A validator: the value when ``holds(value)``, else ValueError(``problem``), where ``{value}``
    or ``{value!r}`` names the value."""

    def check(value: Any) -> Any:
        if not holds(value):
            raise ValueError(problem.format(value=value))
        return value

    return check


_relative_prefix = _must(lambda prefix: not prefix.startswith("/") and not prefix.endswith("/"),
                         "must not start or end with '/', got {value!r}")
_dms_prefix = _must(_DMS_PREFIX.match,
                    "must start with a letter and hold letters, digits and '-' (at most 40), got {value!r}")
_share = _must(lambda fraction: fraction is None or 0 < fraction <= 1,
               "must be above 0 and at most 1 (or null), got {value}")
_index_fields = _must(lambda value: isinstance(value, Mapping)
                      and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()),
                      "must map index names to field names (strings)")
_dag_name = _must(_NAME.match, "may hold letters, digits, '_', '.', '-' only, got {value!r}")
_dynamodb_name = _must(_TABLE_NAME.match, "{value!r} is not a valid DynamoDB table name")
_mongo_name = _must(lambda name: name and not _MONGO_NAME_FORBIDDEN.search(name), "{value!r} is not a valid MongoDB name")
_collection_name = _must(lambda name: name and not name.startswith("system.") and "$" not in name,
                         "{value!r} is not a valid MongoDB collection name")


@with_config(STRICT)
@dataclasses.dataclass(frozen=True)
class ExportConfig:
    s3_bucket: Annotated[StrictStr, Field(description="Bucket the point-in-time export writes to.")]
    s3_prefix: Annotated[StrictStr, AfterValidator(_relative_prefix)] = "dynamo2mongo"
    format: Annotated[Literal[EXPORT_FORMATS], RunParam("export_format"), Field(description="Format of the point-in-time export: ION keeps every DynamoDB type; "
        "DYNAMODB_JSON is the alternative.")] = "ION"
    enable_pitr: Annotated[StrictBool, Field(description="Let the export step turn point-in-time recovery on.")] = False
    poll_seconds: Annotated[StrictInt, Field(ge=1, le=3600)] = 30
    max_wait_seconds: Annotated[StrictInt, Field(ge=60, le=24 * 3600)] = 6 * 3600



@with_config(STRICT)
@dataclasses.dataclass(frozen=True)
class ImportConfig:
    batch_size: Annotated[StrictInt, RunParam("import_batch_size"), Field(ge=1, le=100_000, description="Documents per unordered bulk write during the import.")] = 1000
    write_concern: Literal[WRITE_CONCERNS] = "majority"


@with_config(STRICT)
@dataclasses.dataclass(frozen=True)
class SyncConfig:
    forward: Literal[FORWARD_ENGINES] = "relay"
    backward: Literal[BACKWARD_ENGINES] = "relay"
    conflict_policy: Literal[CONFLICT_POLICIES] = "dynamodb_wins"
    lag_threshold_seconds: Annotated[StrictInt, RunParam("lag_threshold_seconds"), Field(ge=1, le=12 * 3600, description="Forward-sync lag under which the table counts as caught up.")] = 60
    lag_consecutive_checks: Annotated[StrictInt, Field(ge=1, le=1000)] = 3
    lag_poll_seconds: Annotated[StrictInt, Field(ge=1, le=3600)] = 10
    retention_alarm_hours: Annotated[StrictInt, Field(ge=1, le=23, description=(
        "The lag sensor fails once unapplied records are this old: DynamoDB Streams drops them at 24 h."))] = 18
    heartbeat_timeout_seconds: Annotated[StrictInt, Field(ge=5, le=3600, description=(
        "A relay whose heartbeat is older than this counts as down."))] = 120
    batch_size: Annotated[StrictInt, Field(ge=1, le=1000, description="Stream records per GetRecords.")] = 1000
    bson_dates: Annotated[Literal[DATE_MAPPINGS], Field(description=(
        "How backward sync writes BSON Dates to DynamoDB (README, Quarantine); reject quarantines the change."))] = "iso8601"
    bson_object_ids: Annotated[Literal[OBJECT_ID_MAPPINGS], Field(description=(
        "How backward sync writes ObjectIds to DynamoDB; reject quarantines the change."))] = "hex"

    @property
    def bson_mapping(self) -> BsonMapping:
        return BsonMapping(self.bson_dates, self.bson_object_ids)


@with_config(STRICT)
@dataclasses.dataclass(frozen=True)
class LambdaConfig:
    """The forward-sync Lambda function and its event source mapping (sync.forward: lambda)."""

    role_arn: Annotated[OptionalStr, Field(description="Required on aws.")] = None
    function_name: OptionalStr = None
    mongo_secret_id: Annotated[OptionalStr, Field(description=(
        "Secrets Manager secret (name or ARN) holding the MongoDB URI; the deploy task writes the URI of the "
        "table's Mongo connection into it, so the function's environment names only the secret. Required on aws."))] = None
    memory_mb: Annotated[StrictInt, Field(ge=128, le=10240)] = 512
    timeout_seconds: Annotated[StrictInt, Field(ge=3, le=900)] = 120
    batch_size: Annotated[StrictInt, Field(ge=1, le=10000)] = 500
    batching_window_seconds: Annotated[StrictInt, Field(ge=0, le=300)] = 0
    parallelization_factor: Annotated[StrictInt, Field(ge=1, le=10)] = 1
    maximum_retry_attempts: Annotated[StrictInt, Field(ge=-1, le=10000)] = 100
    on_failure_destination: OptionalStr = None


@with_config(STRICT)
@dataclasses.dataclass(frozen=True)
class DmsConfig:
    """The AWS DMS engine of backward sync (sync.backward: dms); see README for its limits."""

    replication_instance_arn: Annotated[OptionalStr, Field(description="The instance the CDC task runs on; required on aws.")] = None
    secrets_access_role_arn: Annotated[OptionalStr, Field(description=(
        "The role that lets DMS read the source secret (passed with iam:PassRole); required on aws."))] = None
    target_role_arn: Annotated[OptionalStr, Field(description=(
        "The role DMS assumes to write the DynamoDB table; required on aws."))] = None
    source_secret_id: Annotated[OptionalStr, Field(description=(
        "Secrets Manager secret for the MongoDB source (a name, or the ARN of an existing secret); "
        "null: dynamo2mongo/<name>/dms-mongodb-source."))] = None
    identifier_prefix: Annotated[StrictStr, AfterValidator(_dms_prefix), Field(description="First part of the endpoint and task identifiers.")] = "dynamo2mongo"
    docs_to_investigate: Annotated[StrictInt, Field(ge=1, le=1_000_000, description=(
        "How many documents DMS samples to fix the source's columns."))] = 1000
    poll_seconds: Annotated[StrictInt, Field(ge=1, le=3600)] = 15
    max_wait_seconds: Annotated[StrictInt, Field(ge=60, le=86400, description=(
        "The longest wait for a task or a connection test."))] = 1800



@with_config(STRICT)
@dataclasses.dataclass(frozen=True)
class VerifyConfig:
    sample_fraction: Annotated[StrictFloat | None, AfterValidator(_share), Field(description=(
        "null: compare every item; else the share of the table to compare (0 < fraction <= 1)."))] = None
    tolerance: Annotated[StrictInt, Field(ge=0, le=10**9)] = 0
    examples: Annotated[StrictInt, Field(ge=0, le=1000)] = 10



@with_config(STRICT)
@dataclasses.dataclass(frozen=True)
class IndexConfig:
    esr_sort_fields: Annotated[dict[str, str], BeforeValidator(_index_fields), Field(description=(
        "Per DynamoDB index, the field to sort on (Equality-Sort-Range order)."))] = dataclasses.field(default_factory=dict)



@with_config(STRICT)
@dataclasses.dataclass(frozen=True)
class OnCallConfig:
    """How the table's tasks retry, and when a slow full load alerts before the stream forgets changes."""

    retries: Annotated[StrictInt, Field(ge=0, le=20, description=(
        "Transient AWS and MongoDB errors are retried with exponential backoff; errors that cannot heal "
        "fail at once whatever this says."))] = 3
    retry_delay_seconds: Annotated[StrictInt, Field(ge=1, le=3600)] = 30
    max_retry_delay_seconds: Annotated[StrictInt, Field(ge=1, le=24 * 3600)] = 600
    full_load_deadline_hours: Annotated[StrictInt | None, Field(ge=1, le=23, description=(
        "The run's deadline alert fires when forward sync has not caught up this long after the run was "
        "queued: well before sync.retention_alarm_hours, when the lag sensor gives up. null: no alert, which "
        "`airflow dags test` needs on Airflow 3.3.2 (apache/airflow#73428)."))] = 12
    lag_alert_seconds: Annotated[StrictInt, Field(ge=10, le=12 * 3600, description=(
        "The monitor notifies when forward or backward lag stays above this, once per breach, and again when it "
        "ends. Forward lag counts only once forward sync first caught up."))] = 300


@with_config(STRICT)
@dataclasses.dataclass(frozen=True)
class TableConfig:
    name: Annotated[StrictStr, AfterValidator(_dag_name), Field(description="DAG id dynamo2mongo__<name>.")]
    source_table: Annotated[StrictStr, AfterValidator(_dynamodb_name)]
    database: Annotated[StrictStr, AfterValidator(_mongo_name)]
    collection: Annotated[StrictStr, AfterValidator(_collection_name)]
    export: ExportConfig
    region: StrictStr = "us-east-1"
    aws_conn_id: Annotated[StrictStr, Field(description="Airflow connection for AWS.")] = "aws_default"
    mongo_conn_id: Annotated[StrictStr, Field(description="Airflow connection for MongoDB.")] = "mongo_default"
    metadata_database: Annotated[StrictStr, AfterValidator(_mongo_name), Field(description="Migration state, quarantine, checkpoints.")] = "dynamo2mongo"
    environment: Literal[ENVIRONMENTS] = "sandbox"
    number_mapping: Literal[NUMBER_MAPPINGS] = "lossless"
    imports: ImportConfig = dataclasses.field(default_factory=ImportConfig)
    sync: SyncConfig = dataclasses.field(default_factory=SyncConfig)
    forward_lambda: LambdaConfig = dataclasses.field(default_factory=LambdaConfig)
    dms: DmsConfig = dataclasses.field(default_factory=DmsConfig)
    verify: VerifyConfig = dataclasses.field(default_factory=VerifyConfig)
    indexes: IndexConfig = dataclasses.field(default_factory=IndexConfig)
    on_call: OnCallConfig = dataclasses.field(default_factory=OnCallConfig)
    mongo_tls: Annotated[Literal[MONGO_TLS] | None, Field(description=(
        "required refuses a connection without TLS; null: required unless environment is sandbox."))] = None
    owner: StrictStr = "data-platform"
    tags: tuple[StrictStr, ...] = ()
    schedule: Annotated[OptionalStr, Field(description="Cron or preset; null: manual trigger only (or the plan's wave).")] = None


    @property
    def dag_id(self) -> str:
        return f"dynamo2mongo__{self.name}"

    @property
    def tls_required(self) -> bool:
        if self.mongo_tls is None:
            return self.environment != "sandbox"
        return self.mongo_tls == "required"

    @property
    def lambda_function_name(self) -> str:
        return self.forward_lambda.function_name or f"dynamo2mongo-forward-{self.name}"[:64]

    def as_json(self) -> dict[str, Any]:
        """The settings as JSON types: what a trigger or a deadline callback carries."""
        return _TABLE.dump_python(self, mode="json")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TableConfig:
        return _validated(data, f"table {data.get('name')!r}")

    def with_overrides(self, **overrides: Any) -> TableConfig:
        """A copy with dotted keys (``sync.lag_threshold_seconds``) set, validated again; None leaves a key."""
        raw = self.as_json()
        for dotted, value in overrides.items():
            if value is None:
                continue
            node: Any = raw
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict) or leaf not in node:
                raise ConfigError(f"table {self.name!r}: cannot override unknown key {dotted!r}")
            node[leaf] = value
        return _validated(raw, f"table {self.name!r}")

    def with_params(self, params: Mapping[str, Any] | None) -> TableConfig:
        """The configuration a run acts on: the file's, with the run's trigger-form Params applied."""
        params = params or {}
        return self.with_overrides(**{param.key: params.get(param.name) for param in run_params(self)})


def consistent_table(table: TableConfig) -> TableConfig:
    """The rules that tie one section to another."""
    if table.sync.forward == "lambda" and table.environment == "aws":
        for key in ("role_arn", "mongo_secret_id"):
            if not getattr(table.forward_lambda, key):
                raise ValueError(f"'forward_lambda.{key}' is required when sync.forward is lambda on aws")
    if table.sync.backward == "dms" and table.environment == "aws":
        for key in ("replication_instance_arn", "secrets_access_role_arn", "target_role_arn"):
            if not getattr(table.dms, key):
                raise ValueError(f"'dms.{key}' is required when sync.backward is dms on aws")
    on_call = table.on_call
    if on_call.max_retry_delay_seconds < on_call.retry_delay_seconds:
        raise ValueError(f"'on_call.max_retry_delay_seconds' ({on_call.max_retry_delay_seconds}) must be at "
                         f"least 'on_call.retry_delay_seconds' ({on_call.retry_delay_seconds})")
    deadline = on_call.full_load_deadline_hours
    if deadline is not None and deadline >= table.sync.retention_alarm_hours:
        raise ValueError(f"'on_call.full_load_deadline_hours' ({deadline}) must be below "
                         f"'sync.retention_alarm_hours' ({table.sync.retention_alarm_hours}): the deadline "
                         f"alert is the warning that comes before the lag sensor gives up")
    return table


_TABLE = TypeAdapter(Annotated[TableConfig, AfterValidator(consistent_table)])


def _validated(raw: Mapping[str, Any], where: str) -> TableConfig:
    try:
        return _TABLE.validate_python(raw)
    except ValidationError as error:
        raise explain(error, TableConfig, where, raw) from None


@dataclasses.dataclass(frozen=True)
class RunParamSpec:
    """A trigger-form Param of the per-table DAG: its default is the table's setting."""

    name: str
    key: str
    default: Any
    description: str
    # JSON-schema keywords (type, enum, minimum, maximum) the form validates with.
    schema: dict[str, Any]


_SCHEMA_KEYWORDS = ("type", "enum", "minimum", "maximum")


@functools.cache
def _properties(holder: type) -> dict[str, Any]:
    return TypeAdapter(holder).json_schema()["properties"]


def run_params(table: TableConfig) -> list[RunParamSpec]:
    """Every setting marked ``RunParam``, in declaration order, with the table's value as default."""
    holders: list[tuple[str, Any, Any]] = [("", TableConfig, table)]
    holders += [(f"{name}.", field.annotation, getattr(table, name))
                for name, field in fields_of(TableConfig).items() if dataclasses.is_dataclass(field.annotation)]
    specs = []
    for prefix, holder, values in holders:
        for name, field in fields_of(holder).items():
            marker = next((m for m in field.metadata if isinstance(m, RunParam)), None)
            if marker is None:
                continue
            schema = _properties(holder)[name]
            specs.append(RunParamSpec(
                name=marker.name,
                key=prefix + name,
                default=getattr(values, name),
                description=field.description or "",
                schema={k: schema[k] for k in _SCHEMA_KEYWORDS if k in schema},
            ))
    return specs
