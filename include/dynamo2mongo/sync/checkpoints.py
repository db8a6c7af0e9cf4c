"""Relay checkpoints and heartbeats in the metadata database (DESIGN §7).

``checkpoints`` holds one document per table, direction and position: a DynamoDB stream shard
(forward) or a change stream (backward). Each is written after the batch it covers was applied,
so a relay killed at any point resumes after the last applied batch: at worst it applies that
batch's successors again, which the apply functions make harmless.

``relays`` holds one heartbeat per table and direction: who runs it, when it last beat and what it
has done, for the DAG's sensors and for on-call. ``RelayStatus`` names what a relay reports;
``RelayBeat`` says what a heartbeat means, for every reader.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pymongo.database import Database

CHECKPOINTS = "checkpoints"
RELAYS = "relays"


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class CheckpointStore:
    def __init__(self, database: Database, table: str, direction: str):
        self.db = database
        self.table = table
        self.direction = direction

    def _id(self, position: str) -> dict[str, str]:
        return {"table": self.table, "dir": self.direction, "pos": position}

    def load(self, stream: str | None = None) -> dict[str, dict[str, Any]]:
        """Checkpoints of this table and direction (of one stream, when given), by position."""
        query: dict[str, Any] = {"_id.table": self.table, "_id.dir": self.direction}
        if stream is not None:
            query["stream"] = stream
        return {doc["_id"]["pos"]: doc for doc in self.db[CHECKPOINTS].find(query)}

    def save(self, position: str, **fields: Any) -> None:
        fields["updated_at"] = now()
        self.db[CHECKPOINTS].update_one({"_id": self._id(position)}, {"$set": fields}, upsert=True)

    def clear(self) -> int:
        return self.db[CHECKPOINTS].delete_many({"_id.table": self.table, "_id.dir": self.direction}).deleted_count


def relay_id(table: str, direction: str) -> str:
    return f"{table}/{direction}"


class RelayStatus(StrEnum):
    WAITING_FOR_FULL_LOAD = "waiting for full load"
    WAITING_FOR_FORWARD = "waiting for forward sync to catch up"
    APPLYING = "applying"
    # By an operation's control flag; the checkpoints keep the position.
    PAUSED = "paused"
    STOPPED = "stopped"
    FAILED = "failed"


class Heartbeat:
    """The relay's heartbeat document; ``beat`` is cheap enough to call after every batch."""

    def __init__(self, database: Database, table: str, direction: str, every_seconds: float = 2.0):
        self.collection = database[RELAYS]
        self.id = relay_id(table, direction)
        self.every = dt.timedelta(seconds=every_seconds)
        self._last: dt.datetime | None = None
        self.started_at = now()

    def beat(self, status: RelayStatus, force: bool = False, **facts: Any) -> None:
        moment = now()
        if not force and self._last is not None and moment - self._last < self.every:
            return
        self._last = moment
        self.collection.update_one(
            {"_id": self.id},
            {
                "$set": {
                    "status": status,
                    "beat_at": moment,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started_at": self.started_at,
                    **facts,
                }
            },
            upsert=True,
        )


def read_heartbeat(database: Database, table: str, direction: str) -> dict[str, Any] | None:
    return database[RELAYS].find_one({"_id": relay_id(table, direction)})


@dataclass(frozen=True)
class RelayBeat:
    """A relay's last heartbeat, read: whether it applies, has halted or has gone silent."""

    document: dict[str, Any]

    @property
    def status(self) -> str | None:
        return self.document.get("status")

    @property
    def applying(self) -> bool:
        return self.status == RelayStatus.APPLYING

    @property
    def waiting(self) -> bool:
        """Started, but holding off until the migration reaches its phase."""
        return self.status in (RelayStatus.WAITING_FOR_FULL_LOAD, RelayStatus.WAITING_FOR_FORWARD)

    @property
    def stopped(self) -> bool:
        return self.status == RelayStatus.STOPPED

    @property
    def failed(self) -> bool:
        return self.status == RelayStatus.FAILED

    @property
    def halted(self) -> bool:
        """Applies nothing until someone acts: paused by an operation, stopped, or failed."""
        return self.status in (RelayStatus.PAUSED, RelayStatus.STOPPED, RelayStatus.FAILED)

    def age(self, at: dt.datetime) -> float:
        return max(0.0, (at - self.document["beat_at"]).total_seconds())

    def silent(self, at: dt.datetime, timeout: float) -> bool:
        """No beat for longer than ``timeout``: a dead relay applies nothing."""
        return self.age(at) > timeout

    def applies(self, at: dt.datetime, timeout: float) -> bool:
        return self.applying and not self.silent(at, timeout)

    @property
    def host(self) -> str | None:
        return self.document.get("host")

    @property
    def pid(self) -> int | None:
        return self.document.get("pid")

    @property
    def error(self) -> str | None:
        return self.document.get("error")

    @property
    def caught_up_at(self) -> dt.datetime | None:
        return self.document.get("caught_up_at")


def relay_beat(database: Database, table: str, direction: str) -> RelayBeat | None:
    document = read_heartbeat(database, table, direction)
    return RelayBeat(document) if document is not None else None
