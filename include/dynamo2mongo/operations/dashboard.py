"""What the migration dashboard shows per table, as JSON-ready data read from the metadata database.

The status row of ``dynamo2mongo status`` (phase, writer, lag, conflicts, last verification, next
step), the full load's counts (live from the per-file results while it runs, then the reconciled
summary), lag over time from ``lag_history``, the latest conflicts and the sync quarantine's counts and
latest entries (reasons, not the raw changes: those stay in the metadata database).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bson import ObjectId
from pymongo import DESCENDING, MongoClient

from dynamo2mongo.sync import lag_history
from dynamo2mongo.config import Configuration, TableConfig
from dynamo2mongo.sync.echo import CONFLICTS
from dynamo2mongo.state import FILES, Migration, Phase, StateStore
from dynamo2mongo.operations.status import key_text, quarantine_summary, table_status

RECENT_CONFLICTS = 10
RECENT_QUARANTINED = 10


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (ObjectId, bytes)):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def full_load_counts(client: MongoClient, table: TableConfig, migration: Migration) -> dict[str, Any] | None:
    """The last run's full load: the reconciled summary once reconcile ran, else live per-file results."""
    meta = client[table.metadata_database]
    run_id = migration.last_run_id
    export = migration.export_for_run(run_id) if run_id else None
    counts: dict[str, Any] = {"export_items": export.get("item_count") if export else None}
    if export and export.get("export_id"):
        files = list(meta[FILES].find({"table": table.name, "export_id": export["export_id"]},
                                      {"converted_items": 1, "imported_items": 1, "quarantined": 1,
                                       "convert_status": 1}))
        counts.update(
            files_converted=sum(1 for f in files if f.get("convert_status") == "done"),
            files_imported=sum(1 for f in files if f.get("imported_items") is not None),
            converted=sum(int(f.get("converted_items") or 0) for f in files),
            imported=sum(int(f.get("imported_items") or 0) for f in files),
            quarantined=sum(int(f.get("quarantined") or 0) for f in files),
        )
    summary = migration.full_load
    # A new run's export makes the last run's summary stale until its own reconcile.
    if summary.get("manifest_items") is not None and migration.phase != Phase.EXPORTED:
        counts.update(reconciled=summary)
    return counts if any(v is not None for v in counts.values()) else None


def recent_conflicts(client: MongoClient, table: TableConfig, limit: int = RECENT_CONFLICTS) -> list[dict[str, Any]]:
    rows = client[table.metadata_database][CONFLICTS].find(
        {"table": table.name}, {"_id": 0, "key": 1, "policy": 1, "resolution": 1, "detail": 1, "at": 1},
    ).sort("at", DESCENDING).limit(limit)
    return [_jsonable(r) for r in rows]


def table_view(client: MongoClient, configuration: Configuration, table: TableConfig, at: dt.datetime,
               hours: float) -> dict[str, Any]:
    meta = client[table.metadata_database]
    migration = StateStore(meta, table.name).migration()
    row = table_status(client, configuration, table, at, migration)
    return _jsonable({
        **row,
        "source_table": table.source_table,
        "target": f"{table.database}.{table.collection}",
        "engines": {"forward": table.sync.forward, "backward": table.sync.backward},
        "lag_alert_seconds": table.on_call.lag_alert_seconds,
        # A relay silent for longer is shown as stale, never with a lag number that only counts its silence.
        "heartbeat_timeout_seconds": table.sync.heartbeat_timeout_seconds,
        "lag_alerts": migration.lag_alerts,
        "counts": full_load_counts(client, table, migration),
        "lag_history": lag_history.series(meta, table.name, at - dt.timedelta(hours=hours)),
        "recent_conflicts": recent_conflicts(client, table),
        "quarantine": {**row["quarantine"], "latest": [
            {**entry, "key": key_text(entry["key"])}
            for entry in quarantine_summary(meta, table.name, RECENT_QUARANTINED)["latest"]]},
        "quarantine_alert": migration.quarantine_alert,
        "updated_at": migration.updated_at,
    })


def overview(client_for: Any, configuration: Configuration, tables: list[TableConfig], hours: float = 24.0,
             at: dt.datetime | None = None) -> dict[str, Any]:
    """The dashboard's whole payload for ``tables`` (those the user may read); ``client_for(table)``
    gives the client of the table's metadata database."""
    at = at or dt.datetime.now(dt.timezone.utc)
    views = []
    for table in tables:
        try:
            views.append(table_view(client_for(table), configuration, table, at, hours))
        except Exception as error:  # one unreachable metadata database must not blank the others
            views.append({"table": table.name, "dag_id": table.dag_id, "error": f"{type(error).__name__}: {error}"})
    return {"generated_at": _jsonable(at), "hours": hours, "tables": views}
