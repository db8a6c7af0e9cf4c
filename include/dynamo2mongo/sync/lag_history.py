"""Lag over time: forward and backward lag samples per table, for the dashboard's chart.

The relays record their own lag at a steady cadence (``LagSampler``) and the monitor DAG records
every table's lag when it runs, so the chart has points whether or not Airflow is running a task
for the table. Samples expire through a TTL index (``monitor.history_days``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import OperationFailure

from dynamo2mongo.sync.checkpoints import now
from dynamo2mongo.sync.lag import LagReport

SAMPLES = "lag_samples"
TTL_INDEX = "expire_after_history_days"
# MongoDB's codes for "an index of this name exists with other options".
_INDEX_OPTIONS_CONFLICT = {85, 86}


def ensure_indexes(meta: Database, history_days: int) -> None:
    samples = meta[SAMPLES]
    samples.create_index([("table", ASCENDING), ("direction", ASCENDING), ("at", ASCENDING)], name="by_table_time")
    seconds = history_days * 86400
    try:
        samples.create_index("at", expireAfterSeconds=seconds, name=TTL_INDEX)
    except OperationFailure as error:
        if error.code not in _INDEX_OPTIONS_CONFLICT:
            raise
        # The retention changed: the index is rebuilt rather than collMod'ed, which not every server has.
        samples.drop_index(TTL_INDEX)
        samples.create_index("at", expireAfterSeconds=seconds, name=TTL_INDEX)


def record(meta: Database, table: str, direction: str, report: LagReport, source: str,
           at: dt.datetime | None = None) -> None:
    """One sample; ``lag_seconds`` None means not measurable then (relay not started, waiting)."""
    meta[SAMPLES].insert_one({
        "table": table,
        "direction": direction,
        "at": at or now(),
        "lag_seconds": None if report.lag_seconds is None else round(float(report.lag_seconds), 3),
        "failed": bool(report.fatal),
        "detail": report.fatal or report.detail,
        "source": source,
    })


def series(meta: Database, table: str, since: dt.datetime, points: int = 240) -> dict[str, list[dict[str, Any]]]:
    """Per direction, at most ``points`` samples since ``since``, oldest first.

    When more samples exist, each bucket of time keeps its largest lag: a spike must survive
    downsampling, since it is what on-call looks for.
    """
    result: dict[str, list[dict[str, Any]]] = {"forward": [], "backward": []}
    for direction in result:
        rows = list(meta[SAMPLES].find(
            {"table": table, "direction": direction, "at": {"$gte": since}},
            {"_id": 0, "at": 1, "lag_seconds": 1, "failed": 1},
        ).sort("at", ASCENDING))
        result[direction] = _downsample(rows, since, points)
    return result


def _downsample(rows: list[dict[str, Any]], since: dt.datetime, points: int) -> list[dict[str, Any]]:
    if len(rows) <= points:
        return rows
    span = (rows[-1]["at"] - since).total_seconds() or 1.0
    buckets: dict[int, dict[str, Any]] = {}
    for row in rows:
        slot = min(points - 1, int((row["at"] - since).total_seconds() / span * points))
        kept = buckets.get(slot)
        if kept is None or (row["lag_seconds"] or 0.0) > (kept["lag_seconds"] or 0.0) or row["failed"]:
            buckets[slot] = row
    return [buckets[slot] for slot in sorted(buckets)]


class LagSampler:
    """Records a relay's lag every ``every_seconds``; cheap to call after every batch or idle poll."""

    def __init__(self, meta: Database, table: str, direction: str, measure: Callable[[dt.datetime], LagReport],
                 every_seconds: float = 15.0):
        self.meta = meta
        self.table = table
        self.direction = direction
        self.measure = measure
        self.every = dt.timedelta(seconds=every_seconds)
        self._last: dt.datetime | None = None

    def maybe_record(self) -> None:
        moment = now()
        if self._last is not None and moment - self._last < self.every:
            return
        self._last = moment
        record(self.meta, self.table, self.direction, self.measure(moment), f"{self.direction} relay", moment)
