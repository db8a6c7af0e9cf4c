"""The configuration file as a whole: ``defaults`` merged under every table, the ``tables``, and the
optional ``plan`` (waves of tables, each starting when the previous one reaches a milestone), ``pools``
(how many exports and file loads run at once across all tables) and ``monitor`` (how often lag is
sampled, and whom failures and lag breaches are told, and how).

Every error names the file, the table and the key, and says what is allowed, so a typo fails at DAG
parse time rather than hours into a migration.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, NamedTuple

import yaml
from pydantic import (
    AfterValidator, BeforeValidator, Field, StrictInt, StrictStr, TypeAdapter, ValidationError, ValidationInfo,
)
from pydantic import with_config

from dynamo2mongo.config.errors import ConfigError, Items, Says, explain
from dynamo2mongo.config.table import STRICT, OptionalStr, TableConfig, consistent_table

NOTIFY_KINDS = ("sns", "email", "slack")
# What a notification target hears: a failed task, lag above on_call.lag_alert_seconds (or a relay
# that failed), the end of such a breach, a table's sync quarantine no longer empty, and empty again.
NOTIFY_EVENTS = ("failure", "lag_breach", "lag_recovered", "quarantine", "quarantine_cleared")
# Milestones a plan's wave can wait for: reconcile passed, or the lag sensor passed.
MILESTONES = ("full_load_done", "forward_caught_up")

_DAG_SAFE = re.compile(r"[A-Za-z0-9_.-]{1,200}")
_SNS_TOPIC = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}$")
_WAVE_SHAPE = ("must be a table name, a non-empty list of table names, or a mapping with 'tables' (and optionally "
               "'start_after')")


@with_config(STRICT)
@dataclasses.dataclass(frozen=True)
class Wave:
    """Tables that start together. In the file also a bare table name, or a list of names."""

    tables: tuple[StrictStr, ...]
    start_after: Annotated[Literal[MILESTONES] | None, Field(description=(
        "The milestone every table of the previous wave must reach before this wave starts; null for wave 1, "
        "whose tables start on their own schedule (or a manual trigger), and the plan's start_after after it."))] = None


def _wave_forms(data: Any) -> Any:
    if isinstance(data, str):
        data = {"tables": [data]}
    elif isinstance(data, list):
        data = {"tables": data}
    elif not isinstance(data, Mapping):
        raise ValueError(_WAVE_SHAPE)
    names = data.get("tables")
    if "tables" in data and not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise ValueError(_WAVE_SHAPE)
    return data


@with_config(STRICT)
@dataclasses.dataclass(frozen=True)
class PlanConfig:
    """The order in which tables migrate: waves, each starting when the previous wave reaches a milestone."""

    start_after: Literal[MILESTONES] = "full_load_done"
    waves: Annotated[tuple[Annotated[Wave, BeforeValidator(_wave_forms)], ...], Items("'plan.waves' wave {number}"),
                     Says("a non-empty list of waves (each a list of table names)")] = ()

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


def _plan_needs_waves(data: Any) -> Any:
    # An empty plan is what no `plan` key means; a `plan` in the file must list its waves.
    return {"waves": None, **data} if isinstance(data, Mapping) else data


def _ordered_waves(plan: PlanConfig) -> PlanConfig:
    waves = plan.waves
    if not waves:
        raise ValueError("'plan.waves' must be a non-empty list of waves (each a list of table names)")
    if waves[0].start_after is not None:
        raise ValueError("'plan.waves' wave 1: 'start_after' applies from wave 2 on; the first wave's tables start "
                         "on their own 'schedule' (or a manual trigger)")
    first_wave: dict[str, int] = {}
    for number, wave in enumerate(waves, start=1):
        for name in wave.tables:
            earlier = first_wave.setdefault(name, number)
            if earlier == number and wave.tables.count(name) > 1:
                raise ValueError(f"'plan.waves' lists table {name!r} twice in wave {number}")
            if earlier != number:
                raise ValueError(f"'plan.waves' lists table {name!r} in wave {earlier} and wave {number}: it would "
                                 f"wait for its own milestone (a cycle). Keep it in one wave")
    later = tuple(dataclasses.replace(w, start_after=w.start_after or plan.start_after) for w in waves[1:])
    return dataclasses.replace(plan, waves=waves[:1] + later)


Slots = Annotated[StrictInt, Field(ge=1, le=10_000), Says("a whole number of slots between 1 and 10000")]


@with_config(STRICT)
@dataclasses.dataclass(frozen=True)
class PoolsConfig:
    """Airflow pool sizes shared by every table's DAG (create them with ``dynamo2mongo pools --apply``)."""

    exports: Annotated[Slots, Field(description=(
        "Point-in-time exports running at once (a deferred export keeps its slot: it still runs in AWS)."))] = 2
    imports: Annotated[Slots, Field(description=(
        "Mapped convert and import tasks running at once: they share the S3 and MongoDB bandwidth."))] = 8


@with_config(STRICT)
@dataclasses.dataclass(frozen=True)
class NotifyTarget:
    """One place failures and lag breaches are told: an SNS topic, email addresses or a Slack webhook.

    Credentials stay in the named Airflow connections (``aws_conn_id``, ``smtp_conn_id``,
    ``slack_webhook_conn_id``); the configuration names them only.
    """

    kind: Literal[NOTIFY_KINDS]
    events: tuple[Literal[NOTIFY_EVENTS], ...] = NOTIFY_EVENTS
    tables: Annotated[tuple[StrictStr, ...], Field(description="Only these tables' events; empty: every table's.")] = ()
    topic_arn: OptionalStr = None
    aws_conn_id: StrictStr = "aws_default"
    region: OptionalStr = None
    to: tuple[StrictStr, ...] = ()
    smtp_conn_id: StrictStr = "smtp_default"
    from_email: OptionalStr = None
    slack_webhook_conn_id: Annotated[StrictStr, Field(description=(
        "A Slack incoming webhook posts to the channel it was made for."))] = "slack_default"

    def hears(self, event: str, table: str) -> bool:
        return event in self.events and (not self.tables or table in self.tables)


def _complete_target(target: NotifyTarget) -> NotifyTarget:
    needs = {"sns": ("topic_arn",), "email": ("to",), "slack": ()}[target.kind]
    for key in needs:
        if not getattr(target, key):
            raise ValueError(f"a {target.kind} target needs {key!r}")
    if target.kind == "sns" and not _SNS_TOPIC.match(target.topic_arn or ""):
        raise ValueError(f"'topic_arn' is not an SNS topic ARN: {target.topic_arn!r}")
    return target


@with_config(STRICT)
@dataclasses.dataclass(frozen=True)
class MonitorConfig:
    """The monitor DAG: samples every table's lag for the dashboard and notifies on breaches."""

    every_minutes: Annotated[StrictInt, Field(ge=1, le=1440)] = 5
    history_days: Annotated[StrictInt, Field(ge=1, le=366, description=(
        "Lag samples older than this are dropped by a TTL index."))] = 14
    notify: Annotated[tuple[Annotated[NotifyTarget, AfterValidator(_complete_target)], ...],
                      Items("'monitor.notify' target {number}")] = ()

    def targets(self, event: str, table: str) -> list[NotifyTarget]:
        return [t for t in self.notify if t.hears(event, table)]


def _some(tables: tuple[TableConfig, ...]) -> tuple[TableConfig, ...]:
    if not tables:
        raise ValueError("must be a non-empty list")
    return tables


@with_config(STRICT)
@dataclasses.dataclass(frozen=True)
class Configuration:
    FILE_KEYS: ClassVar[tuple[str, ...]] = ("defaults", "tables", "plan", "pools", "monitor")

    tables: Annotated[tuple[Annotated[TableConfig, AfterValidator(consistent_table)], ...], AfterValidator(_some),
                      Items("table {name!r}"), Says("a non-empty list")]
    plan: Annotated[PlanConfig, BeforeValidator(_plan_needs_waves), AfterValidator(_ordered_waves),
                    Says("a mapping with 'waves' (and optionally 'start_after')")] = dataclasses.field(
        default_factory=PlanConfig)
    pools: Annotated[PoolsConfig | None, Says("a mapping such as {exports: 2, imports: 8}"), Field(description=(
        "null or absent: no pools; the tasks run in Airflow's default_pool."))] = None
    monitor: MonitorConfig = dataclasses.field(default_factory=MonitorConfig)

    def table(self, name: str) -> TableConfig:
        for table in self.tables:
            if table.name == name:
                return table
        raise ConfigError(f"table {name!r} is not in the table configuration; known: "
                          f"{', '.join(t.name for t in self.tables)}")


def _merge(defaults: Mapping[str, Any], table: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(defaults)
    for key, value in table.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _defaults_under_tables(data: Any) -> Any:
    if not isinstance(data, Mapping):
        return data
    data = dict(data)
    defaults = data.pop("defaults", None) or {}
    if not isinstance(defaults, Mapping):
        raise ValueError("'defaults' must be a mapping")
    if isinstance(data.get("tables"), list):
        data["tables"] = [_merge(defaults, t) if isinstance(t, Mapping) else t for t in data["tables"]]
    # `pools:` and `monitor:` left empty in the file mean their defaults.
    for section in ("pools", "monitor"):
        if section in data and data[section] is None:
            data[section] = {}
    return data


def _references(configuration: Configuration, info: ValidationInfo) -> Configuration:
    """The rules across parts of the file: names are unique, and the plan and targets name known tables
    (a table left out for its own errors, ``rejected`` in the context, is still known)."""
    known = [t.name for t in configuration.tables]
    known += [name for name in (info.context or {}).get("rejected", ()) if name not in known]
    for position, name in enumerate(known):
        if name in known[:position]:
            raise ValueError(f"table {name!r} is listed twice")
    plan = configuration.plan
    for number, wave in enumerate(plan.waves, start=1):
        for name in wave.tables:
            if name not in known:
                raise ValueError(f"'plan.waves' wave {number} names table {name!r}, which is not in 'tables'; "
                                 f"known: {', '.join(known)}")
    for table in configuration.tables:
        waits = plan.waits_for(table.name)
        if waits is not None and table.schedule is not None:
            previous, names, milestone = waits
            raise ValueError(
                f"table {table.name!r}: 'schedule' must be null: the table is in wave {previous + 1} of the plan, "
                f"which starts it when wave {previous} ({', '.join(names)}) reaches {milestone}. Move it to the "
                f"first wave to give it a schedule")
    for number, target in enumerate(configuration.monitor.notify, start=1):
        for name in target.tables:
            if name not in known:
                raise ValueError(f"'monitor.notify' target {number} names table {name!r}, which is not in "
                                 f"'tables'; known: {', '.join(known)}")
    return configuration


_DOCUMENT = TypeAdapter(Annotated[Configuration, BeforeValidator(_defaults_under_tables), AfterValidator(_references)])


def parse_document(document: Any, source: str = "<config>") -> Configuration:
    """Validate a loaded configuration document: the tables, the plan, the pools and the monitor."""
    if not isinstance(document, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping with a 'tables' list")
    try:
        return _DOCUMENT.validate_python(document)
    except ValidationError as error:
        raise explain(error, Configuration, source, document) from None


def parse_config(document: Any, source: str = "<config>") -> list[TableConfig]:
    """Validate a loaded configuration document and return one TableConfig per table."""
    return list(parse_document(document, source).tables)


def default_config_path() -> Path:
    return Path(os.environ.get("D2M_CONFIG", Path(__file__).resolve().parents[3] / "config" / "tables.yaml"))


def _read(path: str | os.PathLike | None) -> tuple[Any, str]:
    config_path = Path(path) if path else default_config_path()
    try:
        text = config_path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read table configuration {config_path}: {error.strerror}") from error
    try:
        return yaml.safe_load(text), str(config_path)
    except yaml.YAMLError as error:
        raise ConfigError(f"{config_path}: not valid YAML: {error}") from error


def load_configuration(path: str | os.PathLike | None = None) -> Configuration:
    """Read and validate the configuration file (``D2M_CONFIG`` or config/tables.yaml)."""
    return parse_document(*_read(path))


class Loaded(NamedTuple):
    configuration: Configuration
    # Tables left out for errors of their own: the name to show (the table's, or its place in the
    # list when the name is what is wrong) and the error.
    rejected: dict[str, ConfigError]


def load_isolated(path: str | os.PathLike | None = None) -> Loaded:
    """``load_configuration``, except that a table with errors of its own is left out and returned
    with its error, so that one table's typo does not stop every other table's DAG. Errors outside
    the tables (the plan, the pools, the monitor, a name listed twice) still fail the whole file."""
    document, source = _read(path)
    try:
        return Loaded(parse_document(document, source), {})
    except ConfigError as whole:
        tables = document.get("tables") if isinstance(document, Mapping) else None
        if not isinstance(tables, list):
            raise
        rejected: dict[str, ConfigError] = {}
        for position, table in enumerate(tables):
            alone = {key: value for key, value in document.items() if key in ("defaults", "tables")}
            try:
                parse_document({**alone, "tables": [table]}, source)
            except ConfigError as error:
                name = table.get("name") if isinstance(table, Mapping) else None
                shown = name if isinstance(name, str) and _DAG_SAFE.fullmatch(name) else f"table_{position + 1}"
                rejected[shown] = error
        if not rejected or len(rejected) == len(tables):
            raise whole from None
        kept = [t for t, bad in zip(tables, _rejected_positions(tables, rejected)) if not bad]
        names = [n for n in rejected if not n.startswith("table_")]
        try:
            configuration = _DOCUMENT.validate_python({**document, "tables": kept}, context={"rejected": names})
        except ValidationError as error:
            raise explain(error, Configuration, source, document) from None
        return Loaded(configuration, rejected)


def _rejected_positions(tables: list[Any], rejected: dict[str, ConfigError]) -> list[bool]:
    return [
        (isinstance(t, Mapping) and t.get("name") in rejected) or f"table_{i + 1}" in rejected
        for i, t in enumerate(tables)
    ]


def load_config(path: str | os.PathLike | None = None) -> list[TableConfig]:
    """The tables of the configuration file (``D2M_CONFIG`` or config/tables.yaml), validated."""
    return list(load_configuration(path).tables)
