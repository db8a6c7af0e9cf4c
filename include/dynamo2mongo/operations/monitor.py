"""The monitor: every table's lag sampled for the dashboard, and lag breaches turned into alerts.

A breach is a direction whose lag stays above ``on_call.lag_alert_seconds``, or whose relay, Lambda
mapping or retention check reports a failure. Each breach alerts once when it starts and once when
it ends: the state lives in the table's migration document (``lag_alerts.<direction>``). A table's
sync quarantine alerts the same way, once when it stops being empty and once when it is empty again
(``quarantine_alert``), whatever the phase: a quarantined change is never silent. The caller
``commit``s an alert once it was sent, so an alert that could not be sent is raised again by the next
run (at least once), and one that was sent is not repeated.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymongo import MongoClient
from pymongo.database import Database

from dynamo2mongo.sync import lag_history
from dynamo2mongo.config import Configuration, TableConfig
from dynamo2mongo.sync.lag import LagReport
from dynamo2mongo.sync.quarantine import ensure_indexes as ensure_quarantine_indexes
from dynamo2mongo.state import Migration, Phase, StateStore
from dynamo2mongo.operations.status import key_text, table_status

log = logging.getLogger(__name__)

DIRECTIONS = ("forward", "backward")


@dataclass(frozen=True)
class Alert:
    event: str  # lag_breach, lag_recovered, quarantine or quarantine_cleared
    table: str
    # For quarantine alerts: the directions that hold (or held) quarantined changes, comma-separated.
    direction: str
    subject: str
    message: str
    lag_seconds: float | None
    # What ``commit`` writes to the migration document once the alert was sent.
    update: dict[str, Any]
    metadata_database: str

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.event, "table": self.table, "direction": self.direction, "subject": self.subject,
                "message": self.message, "lag_seconds": self.lag_seconds}


def _syncing(migration: Migration) -> bool:
    """Whether the forward relay or function is expected to apply changes: from the export on (before,
    it only waits) until the migration is finished (then nothing syncs any more)."""
    return migration.reached(Phase.EXPORTED) and migration.phase < Phase.FINISHED


def _breach(table: TableConfig, direction: str, report: dict[str, Any], migration: Migration) -> str | None:
    """Why this direction is in breach now; None when it is not (or cannot be judged yet)."""
    if report.get("fatal"):
        return str(report["fatal"])
    if direction == "forward" and not migration.forward_caught_up_at:
        # Until the lag sensor first passed, a large lag is the initial catch-up, not an incident:
        # the sensor and the full-load deadline watch that stretch.
        return None
    lag = report.get("lag_seconds")
    threshold = table.on_call.lag_alert_seconds
    if lag is not None and lag > threshold:
        return f"{direction} lag {lag:.0f} s is above {threshold} s: {report.get('detail')}"
    return None


def _judged(report: dict[str, Any]) -> bool:
    """A report with no lag and no failure says nothing: it neither opens nor closes a breach."""
    return report.get("fatal") is not None or report.get("lag_seconds") is not None


def _transition(table: TableConfig, direction: str, reason: str | None, report: dict[str, Any],
                open_breach: dict[str, Any] | None, at: dt.datetime) -> Alert | None:
    lag = report.get("lag_seconds")
    if reason is not None and open_breach is None:
        return Alert("lag_breach", table.name, direction,
                     f"dynamo2mongo {table.name}: {direction} sync lag breach",
                     f"{table.name} ({table.source_table} -> {table.database}.{table.collection}): {reason}. "
                     f"See the runbook's lag section; `dynamo2mongo status` shows both directions.", lag,
                     {f"lag_alerts.{direction}": {"since": at, "reason": reason}}, table.metadata_database)
    if reason is None and open_breach is not None and _judged(report):
        since = open_breach.get("since")
        lasted = (at - since).total_seconds() if since is not None else None
        how_long = f" after {lasted / 60:.0f} min" if lasted is not None else ""
        return Alert("lag_recovered", table.name, direction,
                     f"dynamo2mongo {table.name}: {direction} sync lag recovered",
                     f"{table.name}: {direction} lag is back to {lag:.1f} s{how_long} "
                     f"(was: {open_breach.get('reason')}).", lag,
                     {f"lag_alerts.{direction}": None}, table.metadata_database)
    return None


def _quarantine_transition(table: TableConfig, quarantine: dict[str, Any], open_alert: dict[str, Any] | None,
                           at: dt.datetime) -> Alert | None:
    counts = {d: quarantine[d] for d in DIRECTIONS}
    total = sum(counts.values())
    if total and open_alert is None:
        directions = ", ".join(d for d in DIRECTIONS if counts[d])
        newest = quarantine["latest"][0] if quarantine["latest"] else None
        newest_text = f" Newest: key {key_text(newest['key'])} ({newest['direction']}): {newest['reason']}." if newest else ""
        return Alert("quarantine", table.name, directions,
                     f"dynamo2mongo {table.name}: {total} change(s) quarantined",
                     f"{table.name} ({table.source_table} -> {table.database}.{table.collection}): "
                     f"{counts['forward']} forward and {counts['backward']} backward change(s) could not be written "
                     f"and are quarantined; every other key keeps syncing.{newest_text} List them with "
                     f"`dynamo2mongo quarantine list --table {table.name}`, fix the data, then retry them "
                     f"(README, Quarantine).", None,
                     {"quarantine_alert": {"since": at, "counts": counts}}, table.metadata_database)
    if not total and open_alert is not None:
        since = open_alert.get("since")
        how_long = f" after {(at - since).total_seconds() / 60:.0f} min" if since is not None else ""
        was = open_alert.get("counts") or {}
        return Alert("quarantine_cleared", table.name, ", ".join(d for d in DIRECTIONS if was.get(d)),
                     f"dynamo2mongo {table.name}: sync quarantine empty again",
                     f"{table.name}: the sync quarantine is empty again{how_long} (was: {was.get('forward', 0)} "
                     f"forward, {was.get('backward', 0)} backward).", None,
                     {"quarantine_alert": None}, table.metadata_database)
    return None


def commit(client: MongoClient, alert: Alert) -> None:
    """Record that ``alert`` was sent: the breach is open (or closed) from now on."""
    StateStore(client[alert.metadata_database], alert.table).update_migration(**alert.update)


# Measures a Lambda engine's forward lag live (its mapping and CloudWatch's IteratorAge): the metadata
# database only holds the lag sensor's last measurement.
MeasureLambda = Callable[[TableConfig], LagReport]


def check_table(client: MongoClient, configuration: Configuration, table: TableConfig, at: dt.datetime,
                measure_lambda: MeasureLambda | None = None) -> tuple[dict[str, Any], list[Alert]]:
    """Sample one table's lag and return its status row with the alerts it raises or ends."""
    meta: Database = client[table.metadata_database]
    state = StateStore(meta, table.name)
    migration = state.migration()
    row = table_status(client, configuration, table, at, migration)
    alerts = []
    quarantined = _quarantine_transition(table, row["quarantine"], migration.quarantine_alert, at)
    if quarantined is not None:
        alerts.append(quarantined)
    if not _syncing(migration):
        return row, alerts
    if table.sync.forward == "lambda" and measure_lambda is not None:
        measured = measure_lambda(table)
        row["forward"] = {"engine": "lambda", **measured.as_dict()}
        # `dynamo2mongo status` and the dashboard read the Lambda engine's lag from here.
        state.update_migration(forward_lag=measured.as_dict())
    open_breaches = migration.lag_alerts
    for direction in DIRECTIONS:
        report = row[direction]
        lag_history.record(meta, table.name, direction,
                           LagReport(report.get("lag_seconds"), report.get("detail") or "", report.get("fatal")),
                           "monitor", at)
        reason = _breach(table, direction, report, migration)
        alert = _transition(table, direction, reason, report, open_breaches.get(direction), at)
        if alert is not None:
            alerts.append(alert)
    return row, alerts


@dataclass
class MonitorPass:
    alerts: list[Alert]
    # Tables that could not be checked, with why: one unreachable table must not silence the others.
    errors: list[str]


def check(client_for: Callable[[TableConfig], MongoClient], configuration: Configuration,
          at: dt.datetime | None = None, measure_lambda: MeasureLambda | None = None) -> MonitorPass:
    """One monitor pass over every configured table (``client_for`` gives the client of its metadata)."""
    at = at or dt.datetime.now(dt.timezone.utc)
    result = MonitorPass([], [])
    prepared: set[tuple[int, str]] = set()
    for table in configuration.tables:
        try:
            client = client_for(table)
            if (id(client), table.metadata_database) not in prepared:
                lag_history.ensure_indexes(client[table.metadata_database], configuration.monitor.history_days)
                ensure_quarantine_indexes(client[table.metadata_database])
                prepared.add((id(client), table.metadata_database))
            result.alerts.extend(check_table(client, configuration, table, at, measure_lambda)[1])
        except Exception as error:
            log.exception("monitor: checking %s failed", table.name)
            result.errors.append(f"{table.name}: {type(error).__name__}: {error}")
    return result
