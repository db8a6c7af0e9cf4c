"""Table configuration: the file that lists the tables to migrate, validated with clear errors.

The file is YAML: an optional ``defaults`` mapping merged under every table, and a ``tables`` list.
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

EXPORT_FORMATS = ("ION", "DYNAMODB_JSON")
NUMBER_MAPPINGS = ("lossless", "double_when_exact")
FORWARD_ENGINES = ("relay", "lambda")
BACKWARD_ENGINES = ("relay", "dms")
CONFLICT_POLICIES = ("dynamodb_wins", "mongodb_wins", "latest_wins")
ENVIRONMENTS = ("sandbox", "aws")

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_MONGO_NAME_FORBIDDEN = re.compile(r'[/\\. "$\x00]')


class ConfigError(ValueError):
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

    replication_instance_arn: str | None = None
    secrets_access_role_arn: str | None = None
    target_role_arn: str | None = None
    # Secrets Manager secret for the MongoDB source; None: dynamo2mongo/<name>/dms-mongodb-source.
    source_secret_id: str | None = None
    identifier_prefix: str = "dynamo2mongo"
    docs_to_investigate: int = 1000
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
    owner: str = "data-platform"
    tags: tuple[str, ...] = ()
    schedule: str | None = None

    @property
    def dag_id(self) -> str:
        return f"dynamo2mongo__{self.name}"

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
}

_CHOICES: dict[str, tuple[str, ...]] = {
    "export.format": EXPORT_FORMATS,
    "number_mapping": NUMBER_MAPPINGS,
    "sync.forward": FORWARD_ENGINES,
    "sync.backward": BACKWARD_ENGINES,
    "sync.conflict_policy": CONFLICT_POLICIES,
    "environment": ENVIRONMENTS,
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
        if f.type in ("str | None", "float | None") and value is None:
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
    return table


def _merge(defaults: dict, table: dict) -> dict:
    merged = dict(defaults)
    for key, value in table.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def parse_config(document: Any, source: str = "<config>") -> list[TableConfig]:
    """Validate a loaded configuration document and return one TableConfig per table."""
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: the top level must be a mapping with a 'tables' list")
    unknown = sorted(set(document) - {"defaults", "tables"})
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key {unknown[0]!r}; allowed: defaults, tables")
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
    return result


def default_config_path() -> Path:
    return Path(os.environ.get("D2M_CONFIG", Path(__file__).resolve().parents[2] / "config" / "tables.yaml"))


def load_config(path: str | os.PathLike | None = None) -> list[TableConfig]:
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
    return parse_config(document, str(config_path))
