"""Table configuration: the file that lists the tables to migrate, validated with clear errors.

The file is YAML: an optional ``defaults`` mapping merged under every table, a ``tables`` list, an
optional ``plan`` (waves of tables, each wave starting when the previous one reaches a milestone) and
optional ``pools`` (how many exports and file loads may run at once across all tables) and an optional
``monitor`` (how often lag is sampled and whom failures and lag breaches are told, and how).
Every error names the table and the key, and says what is allowed, so a typo fails at DAG parse
time rather than hours into a migration.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dynamo2mongo.mapping import DATE_MAPPINGS, OBJECT_ID_MAPPINGS, BsonMapping
from dynamo2mongo.errors import Permanent

EXPORT_FORMATS = ("ION", "DYNAMODB_JSON")
NUMBER_MAPPINGS = ("lossless", "double_when_exact")
FORWARD_ENGINES = ("relay", "lambda")
BACKWARD_ENGINES = ("relay", "dms")
CONFLICT_POLICIES = ("dynamodb_wins", "mongodb_wins", "latest_wins")
ENVIRONMENTS = ("sandbox", "aws")
MONGO_TLS = ("required", "optional")
NOTIFY_KINDS = ("sns", "email", "slack")
# What a notification target hears: a failed task, lag above on_call.lag_alert_seconds (or a relay
# that failed), the end of such a breach, a table's sync quarantine no longer empty, and empty again.
NOTIFY_EVENTS = ("failure", "lag_breach", "lag_recovered", "quarantine", "quarantine_cleared")
# Milestones a plan's wave can wait for: reconcile passed, or the lag sensor passed.
MILESTONES = ("full_load_done", "forward_caught_up")

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_MONGO_NAME_FORBIDDEN = re.compile(r'[/\\. "$\x00]')


class ConfigError(Permanent, ValueError):
    """The table configuration is invalid; the message says where and what to fix."""


@dataclass(frozen=True)
class ExportConfig:
    s3_bucket: str
    s3_prefix: str = "dynamo2mongo"
    format: str = "ION"
    enable_pitr: bool = False
    poll_seconds: int = 30
    max_wait_seconds: int = 6 * 3600


@dataclass(frozen=True)
class ImportConfig:
    batch_size: int = 1000
    write_concern: str = "majority"


@dataclass(frozen=True)
class SyncConfig:
    forward: str = "relay"
    backward: str = "relay"
    conflict_policy: str = "dynamodb_wins"
    lag_threshold_seconds: int = 60
    lag_consecutive_checks: int = 3
    lag_poll_seconds: int = 10
    # The lag sensor fails once unapplied records are this old: DynamoDB Streams drops them at 24 h.
    retention_alarm_hours: int = 18
    # A relay whose heartbeat is older than this counts as down.
    heartbeat_timeout_seconds: int = 120
    batch_size: int = 1000
    # Backward sync writes BSON Dates as ISO-8601 UTC strings and ObjectIds as their hex (README,
    # "Quarantine"); "reject" quarantines such a change instead.
    bson_dates: str = "iso8601"
    bson_object_ids: str = "hex"

    @property
    def bson_mapping(self) -> BsonMapping:
        return BsonMapping(self.bson_dates, self.bson_object_ids)


@dataclass(frozen=True)
class LambdaConfig:
    """The forward-sync Lambda function and its event source mapping (sync.forward: lambda)."""

    role_arn: str | None = None
    function_name: str | None = None
    # Secrets Manager secret (name or ARN) that holds the MongoDB URI; the deploy task writes the URI
    # of the table's Mongo connection into it, so the function's environment names only the secret.
    mongo_secret_id: str | None = None
    memory_mb: int = 512
    timeout_seconds: int = 120
    batch_size: int = 500
    batching_window_seconds: int = 0
    parallelization_factor: int = 1
    maximum_retry_attempts: int = 100
    on_failure_destination: str | None = None


@dataclass(frozen=True)
class DmsConfig:
    """The AWS DMS engine of backward sync (sync.backward: dms); see README for its limits."""

    # The replication instance the CDC task runs on (required on AWS).
    replication_instance_arn: str | None = None
    # The role that lets DMS read the source secret (passed with iam:PassRole).
    secrets_access_role_arn: str | None = None
    # The role DMS assumes to write the DynamoDB table.
    target_role_arn: str | None = None
    # Secrets Manager secret for the MongoDB source (a name, or the ARN of an existing secret);
    # None: dynamo2mongo/<name>/dms-mongodb-source.
    source_secret_id: str | None = None
    # The first part of the endpoint and task identifiers.
    identifier_prefix: str = "dynamo2mongo"
    # How many documents DMS samples to fix the source's columns.
    docs_to_investigate: int = 1000
    # Delay between status calls, and the longest wait for a task or a connection test.
    poll_seconds: int = 15
    max_wait_seconds: int = 1800


@dataclass(frozen=True)
class VerifyConfig:
    # None: compare every item; else the share of the table to compare (0 < fraction <= 1).
    sample_fraction: float | None = None
    tolerance: int = 0
    examples: int = 10


@dataclass(frozen=True)
class IndexConfig:
    esr_sort_fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OnCallConfig:
    """How the table's tasks retry, and when a slow full load alerts before the stream forgets changes."""

    # Transient AWS and MongoDB errors are retried with exponential backoff; errors that cannot heal
    # fail at once whatever this says.
    retries: int = 3
    retry_delay_seconds: int = 30
    max_retry_delay_seconds: int = 600
    # The run's deadline alert fires when forward sync has not caught up this long after the run was
    # queued: well before sync.retention_alarm_hours, when the lag sensor gives up. None: no alert,
    # which `airflow dags test` needs on Airflow 3.3.2 (it fails at the end of a run of a DAG with a
    # deadline: apache/airflow#73428).
    full_load_deadline_hours: int | None = 12
    # The monitor notifies when forward or backward lag stays above this, once per breach, and again
    # when it ends. Forward lag counts only once forward sync first caught up (the lag sensor passed).
    lag_alert_seconds: int = 300


@dataclass(frozen=True)
class TableConfig:
    name: str
    source_table: str
    database: str
    collection: str
    export: ExportConfig
    region: str = "us-east-1"
    aws_conn_id: str = "aws_default"
    mongo_conn_id: str = "mongo_default"
    metadata_database: str = "dynamo2mongo"
    environment: str = "sandbox"
    number_mapping: str = "lossless"
    imports: ImportConfig = field(default_factory=ImportConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    forward_lambda: LambdaConfig = field(default_factory=LambdaConfig)
    dms: DmsConfig = field(default_factory=DmsConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    indexes: IndexConfig = field(default_factory=IndexConfig)
    on_call: OnCallConfig = field(default_factory=OnCallConfig)
    # TLS to MongoDB: "required" refuses a connection without TLS; the default is "required" outside
    # the sandbox environment (None here means: decided by the environment).
    mongo_tls: str | None = None
    owner: str = "data-platform"
    tags: tuple[str, ...] = ()
    schedule: str | None = None

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

    def with_overrides(self, **overrides: Any) -> "TableConfig":
        """A copy with trigger-time overrides applied to the nested sections, validated again."""
        raw = dataclasses.asdict(self)
        for dotted, value in overrides.items():
            if value is None:
                continue
            node = raw
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node[part]
            if leaf not in node:
                raise ConfigError(f"table {self.name!r}: cannot override unknown key {dotted!r}")
            node[leaf] = value
        raw["tags"] = list(raw["tags"])
        return _build_table(raw, f"table {self.name!r}")


_SECTIONS: dict[str, type] = {
    "export": ExportConfig,
    "imports": ImportConfig,
    "sync": SyncConfig,
    "forward_lambda": LambdaConfig,
    "dms": DmsConfig,
    "verify": VerifyConfig,
    "indexes": IndexConfig,
    "on_call": OnCallConfig,
}

_CHOICES: dict[str, tuple[str, ...]] = {
    "export.format": EXPORT_FORMATS,
    "number_mapping": NUMBER_MAPPINGS,
    "sync.forward": FORWARD_ENGINES,
    "sync.backward": BACKWARD_ENGINES,
    "sync.conflict_policy": CONFLICT_POLICIES,
    "sync.bson_dates": DATE_MAPPINGS,
    "sync.bson_object_ids": OBJECT_ID_MAPPINGS,
    "environment": ENVIRONMENTS,
    "mongo_tls": MONGO_TLS,
    "imports.write_concern": ("majority", "1"),
}

_BOUNDS: dict[str, tuple[int, int]] = {
    "export.poll_seconds": (1, 3600),
    "export.max_wait_seconds": (60, 24 * 3600),
    "imports.batch_size": (1, 100_000),
    "sync.lag_threshold_seconds": (1, 12 * 3600),
    "sync.lag_consecutive_checks": (1, 1000),
    "sync.lag_poll_seconds": (1, 3600),
    "sync.retention_alarm_hours": (1, 23),
    "sync.heartbeat_timeout_seconds": (5, 3600),
    "sync.batch_size": (1, 1000),
    "forward_lambda.memory_mb": (128, 10240),
    "forward_lambda.timeout_seconds": (3, 900),
    "forward_lambda.batch_size": (1, 10000),
    "forward_lambda.batching_window_seconds": (0, 300),
    "forward_lambda.parallelization_factor": (1, 10),
    "forward_lambda.maximum_retry_attempts": (-1, 10000),
    "dms.docs_to_investigate": (1, 1_000_000),
    "dms.poll_seconds": (1, 3600),
    "dms.max_wait_seconds": (60, 86400),
    "verify.tolerance": (0, 10**9),
    "verify.examples": (0, 1000),
    "on_call.retries": (0, 20),
    "on_call.retry_delay_seconds": (1, 3600),
    "on_call.max_retry_delay_seconds": (1, 24 * 3600),
    "on_call.full_load_deadline_hours": (1, 23),
    "on_call.lag_alert_seconds": (10, 12 * 3600),
}


def _check_keys(raw: dict, allowed: type, where: str) -> None:
    names = {f.name for f in dataclasses.fields(allowed)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(sorted(names))}")
    required = [
        f.name
        for f in dataclasses.fields(allowed)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in raw]
    if missing:
        raise ConfigError(f"{where}: missing required key {missing[0]!r}")


def _check_value(key: str, value: Any, expected: type, where: str) -> None:
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise ConfigError(f"{where}: {key!r} must be {expected.__name__}, got {type(value).__name__} {value!r}")
    if key in _CHOICES and value not in _CHOICES[key]:
        raise ConfigError(f"{where}: {key!r} must be one of {', '.join(_CHOICES[key])}, got {value!r}")
    if key in _BOUNDS:
        low, high = _BOUNDS[key]
        if not low <= value <= high:
            raise ConfigError(f"{where}: {key!r} must be between {low} and {high}, got {value}")


_FIELD_TYPES: dict[str, type] = {
    "str": str,
    "int": int,
    "bool": bool,
    "str | None": str,
    "float | None": float,
    "int | None": int,
    "dict[str, str]": dict,
    "tuple[str, ...]": tuple,
}


def _build_section(cls: type, raw: Any, prefix: str, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: {prefix.rstrip('.')!r} must be a mapping, got {type(raw).__name__}")
    _check_keys(raw, cls, f"{where}, section {prefix.rstrip('.')!r}" if prefix else where)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue
        key = prefix + f.name
        value = raw[f.name]
        if f.name in _SECTIONS and not prefix:
            values[f.name] = _build_section(_SECTIONS[f.name], value, key + ".", where)
            continue
        if f.type in ("str | None", "float | None", "int | None") and value is None:
            values[f.name] = None
            continue
        if f.type == "tuple[str, ...]":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}: {key!r} must be a list of strings")
            values[f.name] = tuple(value)
            continue
        if f.type == "float | None" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        _check_value(key, value, _FIELD_TYPES[f.type], where)
        if f.type == "dict[str, str]" and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ConfigError(f"{where}: {key!r} must map index names to field names (strings)")
        values[f.name] = value
    return cls(**values)


def _build_table(raw: dict, where: str) -> TableConfig:
    table = _build_section(TableConfig, raw, "", where)
    if not _NAME.match(table.name):
        raise ConfigError(f"{where}: 'name' may hold letters, digits, '_', '.', '-' only, got {table.name!r}")
    if not _TABLE_NAME.match(table.source_table):
        raise ConfigError(f"{where}: 'source_table' {table.source_table!r} is not a valid DynamoDB table name")
    for key in ("database", "collection", "metadata_database"):
        value = getattr(table, key)
        if not value or (key != "collection" and _MONGO_NAME_FORBIDDEN.search(value)):
            raise ConfigError(f"{where}: {key!r} {value!r} is not a valid MongoDB name")
    if table.collection.startswith("system.") or "$" in table.collection:
        raise ConfigError(f"{where}: 'collection' {table.collection!r} is not a valid MongoDB collection name")
    if table.sync.forward == "lambda" and table.environment == "aws":
        for key in ("role_arn", "mongo_secret_id"):
            if not getattr(table.forward_lambda, key):
                raise ConfigError(f"{where}: 'forward_lambda.{key}' is required when sync.forward is lambda on aws")
    if table.sync.backward == "dms" and table.environment == "aws":
        for key in ("replication_instance_arn", "secrets_access_role_arn", "target_role_arn"):
            if not getattr(table.dms, key):
                raise ConfigError(f"{where}: 'dms.{key}' is required when sync.backward is dms on aws")
    if not re.match(r"^[A-Za-z][A-Za-z0-9-]{0,39}$", table.dms.identifier_prefix):
        raise ConfigError(f"{where}: 'dms.identifier_prefix' must start with a letter and hold letters, digits "
                          f"and '-' (at most 40), got {table.dms.identifier_prefix!r}")
    fraction = table.verify.sample_fraction
    if fraction is not None and not 0 < fraction <= 1:
        raise ConfigError(f"{where}: 'verify.sample_fraction' must be above 0 and at most 1 (or null), got {fraction}")
    prefix = table.export.s3_prefix
    if prefix.startswith("/") or prefix.endswith("/"):
        raise ConfigError(f"{where}: 'export.s3_prefix' must not start or end with '/', got {prefix!r}")
    if table.on_call.max_retry_delay_seconds < table.on_call.retry_delay_seconds:
        raise ConfigError(f"{where}: 'on_call.max_retry_delay_seconds' ({table.on_call.max_retry_delay_seconds}) "
                          f"must be at least 'on_call.retry_delay_seconds' ({table.on_call.retry_delay_seconds})")
    deadline = table.on_call.full_load_deadline_hours
    if deadline is not None and deadline >= table.sync.retention_alarm_hours:
        raise ConfigError(f"{where}: 'on_call.full_load_deadline_hours' ({table.on_call.full_load_deadline_hours}) "
                          f"must be below 'sync.retention_alarm_hours' ({table.sync.retention_alarm_hours}): the "
                          f"deadline alert is the warning that comes before the lag sensor gives up")
    return table


def _merge(defaults: dict, table: dict) -> dict:
    merged = dict(defaults)
    for key, value in table.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True)
class Wave:
    tables: tuple[str, ...]
    # The milestone every table of the previous wave must reach before this wave starts; None for wave 1,
    # whose tables start on their own ``schedule`` (or a manual trigger).
    start_after: str | None = None


@dataclass(frozen=True)
class PlanConfig:
    """The order in which tables migrate: waves, each starting when the previous wave reaches a milestone."""

    waves: tuple[Wave, ...] = ()

    def wave_of(self, table: str) -> int | None:
        """The table's wave, counted from 1; None when the table is not in the plan."""
        for number, wave in enumerate(self.waves, start=1):
            if table in wave.tables:
                return number
        return None

    def waits_for(self, table: str) -> tuple[int, tuple[str, ...], str] | None:
        """(previous wave's number, its tables, the milestone they must reach), or None for a table that
        starts on its own schedule."""
        number = self.wave_of(table)
        if number is None or number == 1:
            return None
        wave = self.waves[number - 1]
        return number - 1, self.waves[number - 2].tables, wave.start_after or MILESTONES[0]


@dataclass(frozen=True)
class PoolsConfig:
    """Airflow pool sizes shared by every table's DAG (create them with ``dynamo2mongo pools --apply``)."""

    # Point-in-time exports running at once (a deferred export keeps its slot: it still runs in AWS).
    exports: int = 2
    # Mapped convert and import tasks running at once: they share the S3 and MongoDB bandwidth.
    imports: int = 8


@dataclass(frozen=True)
class NotifyTarget:
    """One place failures and lag breaches are told: an SNS topic, email addresses or a Slack webhook.

    Credentials stay in the named Airflow connections (``aws_conn_id``, ``smtp_conn_id``,
    ``slack_webhook_conn_id``); the configuration names them only.
    """

    kind: str
    events: tuple[str, ...] = NOTIFY_EVENTS
    # Only these tables' events; empty: every table's.
    tables: tuple[str, ...] = ()
    topic_arn: str | None = None
    aws_conn_id: str = "aws_default"
    region: str | None = None
    to: tuple[str, ...] = ()
    smtp_conn_id: str = "smtp_default"
    from_email: str | None = None
    # A Slack incoming webhook posts to the channel it was made for.
    slack_webhook_conn_id: str = "slack_default"

    def hears(self, event: str, table: str) -> bool:
        return event in self.events and (not self.tables or table in self.tables)


@dataclass(frozen=True)
class MonitorConfig:
    """The monitor DAG: samples every table's lag for the dashboard and notifies on breaches."""

    every_minutes: int = 5
    # Lag samples older than this are dropped by a TTL index.
    history_days: int = 14
    notify: tuple[NotifyTarget, ...] = ()

    def targets(self, event: str, table: str) -> list[NotifyTarget]:
        return [t for t in self.notify if t.hears(event, table)]


@dataclass(frozen=True)
class Configuration:
    tables: tuple[TableConfig, ...]
    plan: PlanConfig = field(default_factory=PlanConfig)
    # None: no pools configured; the tasks run in Airflow's default_pool.
    pools: PoolsConfig | None = None
    monitor: MonitorConfig = field(default_factory=MonitorConfig)

    def table(self, name: str) -> TableConfig:
        for table in self.tables:
            if table.name == name:
                return table
        raise ConfigError(f"table {name!r} is not in the table configuration; known: "
                          f"{', '.join(t.name for t in self.tables)}")


_TOP_LEVEL = ("defaults", "tables", "plan", "pools", "monitor")


def _parse_wave(raw: Any, number: int, default_after: str, known: list[str], where: str) -> Wave:
    label = f"{where}: 'plan.waves' wave {number}"
    after: Any = None
    if isinstance(raw, dict):
        unknown = sorted(set(raw) - {"tables", "start_after"})
        if unknown:
            raise ConfigError(f"{label}: unknown key {unknown[0]!r}; allowed keys: start_after, tables")
        if "tables" not in raw:
            raise ConfigError(f"{label}: missing required key 'tables'")
        after = raw.get("start_after")
        raw = raw["tables"]
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{label}: must be a table name, a non-empty list of table names, or a mapping with "
                          f"'tables' (and optionally 'start_after')")
    for name in names:
        if name not in known:
            raise ConfigError(f"{label} names table {name!r}, which is not in 'tables'; known: {', '.join(known)}")
    if number == 1:
        if after is not None:
            raise ConfigError(f"{label}: 'start_after' applies from wave 2 on; the first wave's tables start on "
                              f"their own 'schedule' (or a manual trigger)")
        return Wave(tuple(names))
    after = default_after if after is None else after
    if after not in MILESTONES:
        raise ConfigError(f"{label}: 'start_after' must be one of {', '.join(MILESTONES)}, got {after!r}")
    return Wave(tuple(names), after)


def _parse_plan(raw: Any, tables: list[TableConfig], where: str) -> PlanConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'plan' must be a mapping with 'waves' (and optionally 'start_after')")
    unknown = sorted(set(raw) - {"waves", "start_after"})
    if unknown:
        raise ConfigError(f"{where}: 'plan': unknown key {unknown[0]!r}; allowed keys: start_after, waves")
    default_after = raw.get("start_after", MILESTONES[0])
    if default_after not in MILESTONES:
        raise ConfigError(f"{where}: 'plan.start_after' must be one of {', '.join(MILESTONES)}, got {default_after!r}")
    waves_raw = raw.get("waves")
    if not isinstance(waves_raw, list) or not waves_raw:
        raise ConfigError(f"{where}: 'plan.waves' must be a non-empty list of waves (each a list of table names)")
    known = [t.name for t in tables]
    waves = [_parse_wave(w, n, default_after, known, where) for n, w in enumerate(waves_raw, start=1)]
    first_wave: dict[str, int] = {}
    for number, wave in enumerate(waves, start=1):
        for name in wave.tables:
            if name in first_wave:
                earlier = first_wave[name]
                if earlier == number:
                    raise ConfigError(f"{where}: 'plan.waves' lists table {name!r} twice in wave {number}")
                raise ConfigError(
                    f"{where}: 'plan.waves' lists table {name!r} in wave {earlier} and wave {number}: it would wait "
                    f"for its own milestone (a cycle). Keep it in one wave"
                )
            first_wave[name] = number
    plan = PlanConfig(tuple(waves))
    for table in tables:
        waits = plan.waits_for(table.name)
        if waits is not None and table.schedule is not None:
            previous, names, milestone = waits
            raise ConfigError(
                f"{where}: table {table.name!r}: 'schedule' must be null: the table is in wave {previous + 1} of the "
                f"plan, which starts it when wave {previous} ({', '.join(names)}) reaches {milestone}. Move it to "
                f"the first wave to give it a schedule"
            )
    return plan


def _parse_pools(raw: Any, where: str) -> PoolsConfig:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'pools' must be a mapping such as {{exports: 2, imports: 8}}")
    unknown = sorted(set(raw) - {"exports", "imports"})
    if unknown:
        raise ConfigError(f"{where}: 'pools': unknown key {unknown[0]!r}; allowed keys: exports, imports")
    for key, value in raw.items():
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10_000:
            raise ConfigError(f"{where}: 'pools.{key}' must be a whole number of slots between 1 and 10000, "
                              f"got {value!r}")
    return PoolsConfig(**raw)


_TARGET_NEEDS = {"sns": ("topic_arn",), "email": ("to",), "slack": ()}


def _parse_target(raw: Any, number: int, tables: list[str], where: str) -> NotifyTarget:
    label = f"{where}: 'monitor.notify' target {number}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: must be a mapping with 'kind' ({', '.join(NOTIFY_KINDS)})")
    kind = raw.get("kind")
    if kind not in NOTIFY_KINDS:
        raise ConfigError(f"{label}: 'kind' must be one of {', '.join(NOTIFY_KINDS)}, got {kind!r}")
    target = _build_section(NotifyTarget, raw, "", label)
    for key in _TARGET_NEEDS[kind]:
        if not getattr(target, key):
            raise ConfigError(f"{label}: a {kind} target needs {key!r}")
    for event in target.events:
        if event not in NOTIFY_EVENTS:
            raise ConfigError(f"{label}: unknown event {event!r}; events: {', '.join(NOTIFY_EVENTS)}")
    for name in target.tables:
        if name not in tables:
            raise ConfigError(f"{label} names table {name!r}, which is not in 'tables'; known: {', '.join(tables)}")
    if kind == "sns" and not re.match(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}$",
                                      target.topic_arn or ""):
        raise ConfigError(f"{label}: 'topic_arn' is not an SNS topic ARN: {target.topic_arn!r}")
    return target


def _parse_monitor(raw: Any, tables: list[TableConfig], where: str) -> MonitorConfig:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'monitor' must be a mapping such as {{every_minutes: 5, notify: [...]}}")
    unknown = sorted(set(raw) - {"every_minutes", "history_days", "notify"})
    if unknown:
        raise ConfigError(f"{where}: 'monitor': unknown key {unknown[0]!r}; allowed keys: every_minutes, "
                          f"history_days, notify")
    for key, (low, high) in {"every_minutes": (1, 1440), "history_days": (1, 366)}.items():
        value = raw.get(key, getattr(MonitorConfig, key))
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ConfigError(f"{where}: 'monitor.{key}' must be a whole number between {low} and {high}, got {value!r}")
    notify = raw.get("notify") or []
    if not isinstance(notify, list):
        raise ConfigError(f"{where}: 'monitor.notify' must be a list of targets")
    names = [t.name for t in tables]
    targets = tuple(_parse_target(t, n, names, where) for n, t in enumerate(notify, start=1))
    return MonitorConfig(raw.get("every_minutes", MonitorConfig.every_minutes),
                         raw.get("history_days", MonitorConfig.history_days), targets)


def parse_document(document: Any, source: str = "<config>") -> Configuration:
    """Validate a loaded configuration document: the tables, the plan and the pools."""
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: the top level must be a mapping with a 'tables' list")
    unknown = sorted(set(document) - set(_TOP_LEVEL))
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key {unknown[0]!r}; allowed: {', '.join(_TOP_LEVEL)}")
    defaults = document.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{source}: 'defaults' must be a mapping")
    tables = document.get("tables")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"{source}: 'tables' must be a non-empty list")
    result: list[TableConfig] = []
    seen: set[str] = set()
    for position, raw in enumerate(tables, start=1):
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: table #{position} must be a mapping")
        label = raw.get("name", f"#{position}")
        table = _build_table(_merge(defaults, raw), f"{source}: table {label!r}")
        if table.name in seen:
            raise ConfigError(f"{source}: table {table.name!r} is listed twice")
        seen.add(table.name)
        result.append(table)
    plan = _parse_plan(document["plan"], result, source) if "plan" in document else PlanConfig()
    pools = _parse_pools(document["pools"], source) if "pools" in document else None
    monitor = _parse_monitor(document.get("monitor"), result, source)
    return Configuration(tuple(result), plan, pools, monitor)


def parse_config(document: Any, source: str = "<config>") -> list[TableConfig]:
    """Validate a loaded configuration document and return one TableConfig per table."""
    return list(parse_document(document, source).tables)


def default_config_path() -> Path:
    return Path(os.environ.get("D2M_CONFIG", Path(__file__).resolve().parents[2] / "config" / "tables.yaml"))


def load_configuration(path: str | os.PathLike | None = None) -> Configuration:
    """Read and validate the configuration file (``D2M_CONFIG`` or config/tables.yaml)."""
    config_path = Path(path) if path else default_config_path()
    try:
        text = config_path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read table configuration {config_path}: {error.strerror}") from error
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{config_path}: not valid YAML: {error}") from error
    return parse_document(document, str(config_path))


def load_config(path: str | os.PathLike | None = None) -> list[TableConfig]:
    """The tables of the configuration file (``D2M_CONFIG`` or config/tables.yaml), validated."""
    return list(load_configuration(path).tables)
