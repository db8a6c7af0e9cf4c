"""Durable migration state in the metadata database (DESIGN §7).

Collections:
- ``migrations``: one document per table: phase, stream facts, the export of each run. ``Migration``
  reads it; ``Phase`` names and orders its phases.
- ``files``: one document per export data file and run: conversion and import results, so a
  cleared task can skip finished work and reconcile can list per-file differences.
- ``quarantine``: raw records that could not be converted, with file, line and reason.

XCom carries only small facts; everything an on-call engineer needs after a crash lives here.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pymongo import ReturnDocument
from pymongo.database import Database

from dynamo2mongo.prepare.table import TableKey

MIGRATIONS = "migrations"
FILES = "files"
QUARANTINE = "quarantine"


WRITER_DYNAMODB, WRITER_MONGODB = "dynamodb", "mongodb"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Phase(StrEnum):
    """Where a table's migration stands (``migrations.phase``), ordered by how far it has come.

    A mismatched reconcile is short of a reconciled full load. A rollback returns the table to where
    it stood before its cut-over, with everything since kept, so ``ROLLED_BACK`` sits between
    ``FORWARD_CAUGHT_UP`` and ``CUT_OVER``. ``FINISHED`` is last: both syncs stopped for good.
    Comparisons go by this order (a phase compared with its name is read as the phase first).
    """

    PREFLIGHT_PASSED = "preflight_passed"
    EXPORTED = "exported"
    FULL_LOAD_MISMATCH = "full_load_mismatch"
    FULL_LOAD_DONE = "full_load_done"
    FORWARD_CAUGHT_UP = "forward_caught_up"
    ROLLED_BACK = "rolled_back"
    CUT_OVER = "cut_over"
    FINISHED = "finished"

    def _rank(self, other: object) -> tuple[int, int]:
        # A str subclass would otherwise fall back to comparing the names alphabetically.
        return _ORDER.index(self), _ORDER.index(Phase(other))

    def __lt__(self, other: object) -> bool:
        mine, theirs = self._rank(other)
        return mine < theirs

    def __le__(self, other: object) -> bool:
        mine, theirs = self._rank(other)
        return mine <= theirs

    def __gt__(self, other: object) -> bool:
        mine, theirs = self._rank(other)
        return mine > theirs

    def __ge__(self, other: object) -> bool:
        mine, theirs = self._rank(other)
        return mine >= theirs


_ORDER = tuple(Phase)
T = TypeVar("T")


class _Field(Generic[T]):
    """An attribute of ``Migration`` that is one top-level field of the document (None while absent)."""

    def __init__(self, name: str | None = None):
        self.name = name

    def __set_name__(self, owner: type, attribute: str) -> None:
        self.name = self.name or attribute

    def __get__(self, migration: Migration | None, owner: type | None = None) -> T:
        if migration is None:  # read on the class: the descriptor itself
            return self  # type: ignore[return-value]
        return self.read(migration)

    def read(self, migration: Migration) -> T:
        return migration.document.get(self.name)


class _Section(_Field[Mapping[str, Any]]):
    """An attribute of ``Migration`` that is one section of the document (empty while absent)."""

    def read(self, migration: Migration) -> Mapping[str, Any]:
        return migration._section(self.name)


class Migration:
    """One table's migration document, read: the phase, the writer and the facts the tasks recorded.

    The document itself stays available as ``document`` for what only one reader needs.
    """

    def __init__(self, document: Mapping[str, Any]):
        self.document = document
        phase = document.get("phase")
        self.phase: Phase | None = Phase(phase) if phase is not None else None

    def _section(self, name: str) -> Mapping[str, Any]:
        # Sections are set whole by one task each; before that task ran they are absent (or null).
        return self.document.get(name) or {}

    def reached(self, phase: Phase) -> bool:
        """Whether the migration is at ``phase`` or past it."""
        return self.phase is not None and self.phase >= phase

    @property
    def writer(self) -> str:
        return self.document.get("writer") or WRITER_DYNAMODB

    last_run_id = _Field[str | None]()

    @property
    def stream_arn(self) -> str | None:
        return self._section("stream").get("arn")

    @property
    def stream_enabled_by_us(self) -> bool:
        return bool(self._section("stream").get("enabled_by_us"))

    @property
    def key_attrs(self) -> tuple[str, ...]:
        return tuple(self._section("source").get("key") or ())

    @property
    def key(self) -> TableKey | None:
        """The table's key as preflight recorded it; None before (then DescribeTable tells)."""
        attrs, types = self.key_attrs, self._section("source").get("key_types") or {}
        if not attrs or any(name not in types for name in attrs):
            return None
        return TableKey(attrs, {name: types[name] for name in attrs})

    @property
    def size_bytes(self) -> int | None:
        return self._section("source").get("size_bytes")

    exports = _Section()

    def export_for_run(self, run_id: str) -> dict[str, Any] | None:
        return self.exports.get(_field_key(run_id))

    def desired(self, direction: str) -> str:
        return self._section("control").get(direction) or "run"

    def sync_started(self, direction: str) -> bool:
        return bool(self.document.get(f"{direction}_sync_started"))

    # What forward_sync deployed (engine, function, mapping).
    forward_engine = _Section("forward")
    # The lag sensor's (or the monitor's) last measurement of a Lambda engine.
    forward_lag = _Section()
    forward_caught_up_at = _Field[dt.datetime | None]()

    @property
    def lag_alerts(self) -> Mapping[str, dict[str, Any]]:
        """The open lag breach of each direction (a closed one is null)."""
        return {direction: alert for direction, alert in self._section("lag_alerts").items() if alert}

    quarantine_alert = _Field[dict[str, Any] | None]()

    @property
    def alert_message(self) -> str | None:
        return self._section("alert").get("message")

    # Reconcile's summary of the last full load.
    full_load = _Section()
    cut_over_at = _Field[dt.datetime | None]()
    updated_at = _Field[dt.datetime | None]()


class StateStore:
    """Reads and writes one table's state; every write is an idempotent upsert."""

    def __init__(self, database: Database, table: str):
        self.db = database
        self.table = table

    def document(self) -> dict[str, Any]:
        return self.db[MIGRATIONS].find_one({"_id": self.table}) or {"_id": self.table}

    def migration(self) -> Migration:
        return Migration(self.document())

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
        return self.migration().desired(direction)

    def set_desired(self, direction: str, value: str) -> None:
        self.update_migration(**{f"control.{direction}": value})

    def set_phase(self, phase: Phase, run_id: str | None = None) -> None:
        self.update_migration(phase=phase, last_run_id=run_id)

    def record_export(self, run_id: str, export: dict[str, Any]) -> None:
        self.update_migration(**{f"exports.{_field_key(run_id)}": export})

    def export_for_run(self, run_id: str) -> dict[str, Any] | None:
        return self.migration().export_for_run(run_id)

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
