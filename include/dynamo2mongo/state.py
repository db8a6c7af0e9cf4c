"""Durable migration state in the metadata database (DESIGN §7).

Collections:
- ``migrations``: one document per table: phase, stream facts, the export of each run.
- ``files``: one document per export data file and run: conversion and import results, so a
  cleared task can skip finished work and reconcile can list per-file differences.
- ``quarantine``: raw records that could not be converted, with file, line and reason.

XCom carries only small facts; everything an on-call engineer needs after a crash lives here.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from pymongo import ReturnDocument
from pymongo.database import Database

MIGRATIONS = "migrations"
FILES = "files"
QUARANTINE = "quarantine"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class StateStore:
    """Reads and writes one table's state; every write is an idempotent upsert."""

    def __init__(self, database: Database, table: str):
        self.db = database
        self.table = table

    def migration(self) -> dict[str, Any]:
        return self.db[MIGRATIONS].find_one({"_id": self.table}) or {"_id": self.table}

    def update_migration(self, **fields: Any) -> dict[str, Any]:
        fields["updated_at"] = _now()
        return self.db[MIGRATIONS].find_one_and_update(
            {"_id": self.table},
            {"$set": fields, "$setOnInsert": {"created_at": fields["updated_at"]}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )

    def desired(self, direction: str) -> str:
        """``run`` or ``stop``: what the operations (cut-over, rollback, finish) want of a relay."""
        return ((self.migration().get("control") or {}).get(direction)) or "run"

    def set_desired(self, direction: str, value: str) -> None:
        self.update_migration(**{f"control.{direction}": value})

    def set_phase(self, phase: str, run_id: str | None = None) -> None:
        self.update_migration(phase=phase, last_run_id=run_id)

    def record_export(self, run_id: str, export: dict[str, Any]) -> None:
        self.update_migration(**{f"exports.{_field_key(run_id)}": export})

    def export_for_run(self, run_id: str) -> dict[str, Any] | None:
        return (self.migration().get("exports") or {}).get(_field_key(run_id))

    def file_result(self, export_id: str, data_key: str) -> dict[str, Any] | None:
        return self.db[FILES].find_one({"_id": _file_id(self.table, export_id, data_key)})

    def record_file(self, export_id: str, data_key: str, **fields: Any) -> None:
        fields["updated_at"] = _now()
        self.db[FILES].update_one(
            {"_id": _file_id(self.table, export_id, data_key)},
            {"$set": {"table": self.table, "export_id": export_id, "data_key": data_key, **fields}},
            upsert=True,
        )

    def file_results(self, export_id: str) -> list[dict[str, Any]]:
        return list(self.db[FILES].find({"table": self.table, "export_id": export_id}))

    def quarantine(self, export_id: str, data_key: str, line: int, reason: str, raw: str) -> None:
        """Keep a record that could not be migrated; keyed by file and line so a retry adds no twin."""
        self.db[QUARANTINE].update_one(
            {"_id": {"table": self.table, "export_id": export_id, "file": data_key, "line": line}},
            {"$set": {"reason": reason, "raw": raw, "at": _now()}},
            upsert=True,
        )

    def quarantined(self, export_id: str, data_key: str | None = None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"_id.table": self.table, "_id.export_id": export_id}
        if data_key is not None:
            query["_id.file"] = data_key
        return list(self.db[QUARANTINE].find(query).sort("_id.line", 1))


class PauseFlag:
    """What an operation wants of one relay, read at most once a second (relays ask every loop)."""

    def __init__(self, state: StateStore, direction: str):
        self.state = state
        self.direction = direction
        self._read_at = float("-inf")
        self._paused = False

    def __call__(self) -> bool:
        moment = time.monotonic()
        if moment - self._read_at >= 1.0:
            self._read_at = moment
            self._paused = self.state.desired(self.direction) == "stop"
        return self._paused


def _field_key(run_id: str) -> str:
    # Run ids contain '.', ':' and '+', which are not welcome in MongoDB field paths.
    return run_id.replace(".", "_").replace("$", "_")


def _file_id(table: str, export_id: str, data_key: str) -> dict[str, str]:
    return {"table": table, "export_id": export_id, "file": data_key}
