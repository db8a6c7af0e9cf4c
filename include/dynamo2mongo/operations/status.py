"""``dynamo2mongo status``: where every configured table stands, from the metadata database alone.

For each table (the plan's waves first, in order): its phase and writer, the last migration run,
forward and backward lag, conflicts recorded, changes in the sync quarantine (per direction, with the
newest reasons), the last verification, the next thing that happens to it, and any alert the
full-load deadline raised. It reads MongoDB only, so on-call can run it where
Airflow's API is out of reach; what the relays report comes from their heartbeats and checkpoints.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bson import json_util
from pymongo import MongoClient
from pymongo.database import Database

from dynamo2mongo.config import Configuration, TableConfig
from dynamo2mongo.sync.checkpoints import relay_beat
from dynamo2mongo.sync.echo import CONFLICTS
from dynamo2mongo.sync.lag import LagReport, backward_relay_lag, relay_lag
from dynamo2mongo.operations.plan import next_action
from dynamo2mongo.sync.quarantine import Quarantine
from dynamo2mongo.state import Migration, StateStore
from dynamo2mongo.finish.verify import latest_report


def _forward(meta: Database, table: TableConfig, migration: Migration, at: dt.datetime) -> LagReport:
    if table.sync.forward == "relay":
        return relay_lag(meta, table.name, migration.stream_arn,
                         table.sync.heartbeat_timeout_seconds, table.sync.retention_alarm_hours, at)
    # The Lambda engine's lag needs CloudWatch; the lag sensor's last measurement is in the state.
    measured = migration.forward_lag
    if measured.get("lag_seconds") is None:
        return LagReport(None, "lambda: not measured yet (the lag sensor records it)")
    return LagReport(measured["lag_seconds"], f"lambda, as the lag sensor last measured: {measured.get('detail')}")


def _verification(meta: Database, table: TableConfig) -> dict[str, Any] | None:
    report = latest_report(meta, table.name)
    if report is None:
        return None
    return {key: report.get(key) for key in ("run_id", "at", "mode", "checked", "differences", "missing", "extra",
                                              "different")}


NEWEST_QUARANTINED = 3


def quarantine_summary(meta: Database, table: str, newest: int = NEWEST_QUARANTINED) -> dict[str, Any]:
    """Per-direction counts of the sync quarantine and its newest entries (without the raw changes)."""
    quarantine = Quarantine(meta, table)
    counts = quarantine.counts()
    latest = quarantine.entries(limit=newest) if any(counts.values()) else []
    return {**counts, "latest": [{k: e.get(k) for k in ("key", "direction", "reason", "count", "last_at")}
                                 for e in latest]}


def table_status(client: MongoClient, configuration: Configuration, table: TableConfig,
                 at: dt.datetime, migration: Migration | None = None) -> dict[str, Any]:
    """One table's row; ``migration``, its state document when the caller has read it already."""
    meta = client[table.metadata_database]
    if migration is None:
        migration = StateStore(meta, table.name).migration()
    forward = _forward(meta, table, migration, at)
    backward = (
        backward_relay_lag(meta, table.name, table.sync.heartbeat_timeout_seconds, at)
        if table.sync.backward == "relay"
        else LagReport(None, "dms: see the replication task in the AWS DMS console")
    )
    return {
        "table": table.name,
        "dag_id": table.dag_id,
        "wave": configuration.plan.wave_of(table.name),
        "phase": migration.phase,
        "writer": migration.writer,
        "last_run_id": migration.last_run_id,
        "forward": {"engine": table.sync.forward, **forward.as_dict()},
        "backward": {"engine": table.sync.backward, **backward.as_dict()},
        "conflicts": meta[CONFLICTS].count_documents({"table": table.name}),
        "quarantine": quarantine_summary(meta, table.name),
        "verification": _verification(meta, table),
        "next": next_action(configuration.plan, table, migration, _backward_down(meta, table, at)),
        "alert": migration.alert_message,
    }


def _backward_down(meta: Database, table: TableConfig, at: dt.datetime) -> str | None:
    """Why the backward relay would not take over at a cut-over, if it would not (relay engine only)."""
    if table.sync.backward != "relay":
        return None
    beat = relay_beat(meta, table.name, "backward")
    if beat is None:
        return "it has not started"
    if beat.failed:
        return "it failed"
    if beat.silent(at, table.sync.heartbeat_timeout_seconds):
        return f"its heartbeat is {beat.age(at):.0f} s old"
    return None


def collect(client: MongoClient, configuration: Configuration, at: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Status of every table: the plan's tables wave by wave, then the others in configuration order."""
    at = at or dt.datetime.now(dt.timezone.utc)
    plan = configuration.plan
    order = [name for wave in plan.waves for name in wave.tables]
    order += [t.name for t in configuration.tables if plan.wave_of(t.name) is None]
    return [table_status(client, configuration, configuration.table(name), at) for name in order]


def _lag_cell(report: dict[str, Any]) -> str:
    if report.get("fatal"):
        return "FAILED"
    if report.get("lag_seconds") is not None:
        return f"{report['lag_seconds']:.1f} s"
    status = report.get("relay_status")
    return status.split(" ")[0] if status else "-"


def _verification_cell(verification: dict[str, Any] | None) -> str:
    if verification is None:
        return "never"
    at = verification.get("at")
    when = at.strftime("%Y-%m-%d %H:%M") if isinstance(at, dt.datetime) else str(at)
    return f"{verification.get('differences')} diff / {verification.get('checked')} ({when})"


def _quarantine_cell(quarantine: dict[str, Any]) -> str:
    if not quarantine["forward"] and not quarantine["backward"]:
        return "0"
    return f"{quarantine['forward']} fwd / {quarantine['backward']} bwd"


def key_text(key: Any) -> str:
    """A key as on-call reads it: relaxed Extended JSON."""
    return json_util.dumps(key, json_options=json_util.RELAXED_JSON_OPTIONS)


COLUMNS = ("TABLE", "WAVE", "PHASE", "WRITER", "LAST RUN", "FORWARD LAG", "BACKWARD LAG", "CONFLICTS",
           "QUARANTINED", "LAST VERIFICATION", "NEXT")


def render(rows: list[dict[str, Any]]) -> str:
    """A fixed-width table, then the details a cell cannot hold (alerts, failed or lagging relays)."""
    cells = [
        (
            row["table"],
            str(row["wave"] or "-"),
            row["phase"] or "not started",
            row["writer"],
            row["last_run_id"] or "-",
            _lag_cell(row["forward"]),
            _lag_cell(row["backward"]),
            str(row["conflicts"]),
            _quarantine_cell(row["quarantine"]),
            _verification_cell(row["verification"]),
            row["next"],
        )
        for row in rows
    ]
    widths = [max(len(c[i]) for c in [COLUMNS, *cells]) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [COLUMNS, *cells]]
    for row in rows:
        if row["alert"]:
            lines.append(f"! {row['table']}: {row['alert']}")
        for direction in ("forward", "backward"):
            report = row[direction]
            if report.get("fatal"):
                lines.append(f"! {row['table']} {direction}: {report['fatal']}")
            elif row["phase"] and report.get("lag_seconds") is None:
                lines.append(f"  {row['table']} {direction}: {report['detail']}")
        quarantine = row["quarantine"]
        if quarantine["latest"]:
            lines.append(f"! {row['table']}: {quarantine['forward']} forward and {quarantine['backward']} backward "
                         f"change(s) quarantined; every other key keeps syncing. Newest "
                         f"(`dynamo2mongo quarantine list --table {row['table']}` lists all):")
            lines += [f"    {key_text(e['key'])} {e['direction']}: {e['reason']}" for e in quarantine["latest"]]
    return "\n".join(lines)
