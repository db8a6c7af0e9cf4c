"""Cut-over, rollback and finish: the operations that move the writer between the stores (DESIGN §2).

Each checks first that it cannot lose data, then stops one sync direction and keeps the other:

- cut-over (DynamoDB -> MongoDB is the writer): the old application has stopped writing DynamoDB;
  forward sync has applied everything up to the moment the operation began, and no independent
  DynamoDB write arrived since; then forward sync stops. Backward sync keeps DynamoDB current for
  the proving period, so a rollback loses nothing.
- rollback (MongoDB -> DynamoDB is the writer again): the new application has stopped writing
  MongoDB; backward sync has applied everything up to the moment the operation began, and no
  independent MongoDB write arrived since; then backward sync stops and (by default) forward sync
  resumes from where it stopped.
- finish: after a cut-over, both directions stop; the ``_ddb`` metadata may be removed, and the
  stream is disabled only if this migration enabled it.

Every operation is idempotent: run again, it finds its work done and only makes sure of it.
How a direction is stopped depends on its engine (a relay's control flag, a Lambda mapping, a DMS
task): the caller passes a ``Switches`` for it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymongo.database import Database

from dynamo2mongo.sync.checkpoints import CheckpointStore, now, relay_beat
from dynamo2mongo.sync.lag import applied_through
from dynamo2mongo.state import WRITER_DYNAMODB, WRITER_MONGODB, Phase, StateStore
from dynamo2mongo.errors import Permanent

log = logging.getLogger(__name__)

FORWARD, BACKWARD = "forward", "backward"


class OperationRefused(Permanent, RuntimeError):
    """The operation would lose data in the current state; the message says what to do first."""


@dataclass
class Switches:
    """Stops and starts one direction's engine; ``stopped`` says when it has really stopped."""

    stop: Callable[[], None]
    start: Callable[[], None]
    stopped: Callable[[], bool]
    drained_through: Callable[[], dt.datetime | None]
    newest_independent: Callable[[], dt.datetime | None]


def relay_switches(meta: Database, table: str, direction: str, stream_arn: str | None = None,
                   heartbeat_timeout: float = 120.0) -> Switches:
    """Switches for a self-hosted relay: a control flag in the migration state, read by the relay.

    A relay whose heartbeat went silent counts as stopped: it applies nothing.
    """
    state = StateStore(meta, table)

    def stopped() -> bool:
        beat = relay_beat(meta, table, direction)
        return beat is None or beat.halted or beat.silent(now(), heartbeat_timeout)

    def drained_through() -> dt.datetime | None:
        if direction == FORWARD:
            return applied_through(meta, table, stream_arn)
        checkpoint = CheckpointStore(meta, table, BACKWARD).load().get("change_stream") or {}
        return checkpoint.get("caught_up_at")

    def newest_independent() -> dt.datetime | None:
        # From the checkpoints, written with each applied batch (the heartbeat may lag a beat behind).
        seen = [c.get("newest_independent") for c in CheckpointStore(meta, table, direction).load().values()]
        return max((s for s in seen if s is not None), default=None)

    return Switches(
        stop=lambda: state.set_desired(direction, "stop"),
        start=lambda: state.set_desired(direction, "run"),
        stopped=stopped,
        drained_through=drained_through,
        newest_independent=newest_independent,
    )


def _wait(condition: Callable[[], bool], timeout: float, poll: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise OperationRefused(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(poll)


def _drain(switches: Switches, direction: str, began: dt.datetime, quiet_seconds: float, timeout: float,
           poll: float, writer: str) -> dict[str, Any]:
    """Wait until ``direction`` applied everything made before ``began``; refuse if writes go on."""
    _wait(
        lambda: (switches.drained_through() or dt.datetime.min.replace(tzinfo=dt.timezone.utc))
        > began + dt.timedelta(seconds=quiet_seconds),
        timeout,
        poll,
        f"{direction} sync catching up with everything written before {began.isoformat()}",
    )
    newest = switches.newest_independent()
    if newest is not None and newest > began:
        raise OperationRefused(
            f"{writer} was still written at {newest.isoformat()}, after the operation began at {began.isoformat()}: "
            f"stop every writer of {writer} first, then run the operation again"
        )
    return {"drained_through": switches.drained_through(), "newest_independent": newest}


@dataclass
class Operations:
    meta: Database
    table: str
    forward: Switches
    backward: Switches
    quiet_seconds: float = 5.0
    timeout_seconds: float = 1800.0
    poll_seconds: float = 1.0

    @property
    def state(self) -> StateStore:
        return StateStore(self.meta, self.table)

    def cut_over(self) -> dict[str, Any]:
        migration = self.state.migration()
        if migration.writer == WRITER_MONGODB:
            self.forward.stop()
            log.info("%s: already cut over at %s; forward sync stays stopped", self.table, migration.cut_over_at)
            return {"writer": WRITER_MONGODB, "already": True}
        if not migration.reached(Phase.FORWARD_CAUGHT_UP) or migration.reached(Phase.CUT_OVER):
            raise OperationRefused(
                f"table {self.table!r} is in phase {migration.phase or 'not started'}: cut over only after the "
                f"migration DAG passed its lag sensor (phase {Phase.FORWARD_CAUGHT_UP}) or after a rollback"
            )
        # Backward sync may have been paused by a rollback: it resumes from its checkpoint.
        self.backward.start()
        try:
            _wait(lambda: not self.backward.stopped(), min(self.timeout_seconds, 120.0), self.poll_seconds,
                  "backward sync running")
        except OperationRefused:
            raise OperationRefused(
                f"backward sync of {self.table!r} is not running: without it, changes made in MongoDB after the "
                f"cut-over would be lost on a rollback. Start it (`dynamo2mongo relay backward --table {self.table}`)"
            ) from None
        began, drained = self._drain_and_stop("cut-over", self.forward, FORWARD, "DynamoDB")
        self.state.update_migration(writer=WRITER_MONGODB, phase=Phase.CUT_OVER, cut_over_at=now())
        log.info("%s: cut over; MongoDB is the writer, backward sync keeps DynamoDB current", self.table)
        return {"writer": WRITER_MONGODB, "began": began, **drained}

    def rollback(self, resume_forward: bool = True) -> dict[str, Any]:
        migration = self.state.migration()
        if migration.writer == WRITER_DYNAMODB and migration.phase == Phase.ROLLED_BACK:
            self.backward.stop()
            if resume_forward:
                self.forward.start()
            return {"writer": WRITER_DYNAMODB, "already": True}
        if migration.writer != WRITER_MONGODB:
            raise OperationRefused(
                f"table {self.table!r} was not cut over (phase {migration.phase or 'not started'}): DynamoDB is "
                f"still the writer, there is nothing to roll back"
            )
        if migration.phase == Phase.FINISHED:
            raise OperationRefused(f"table {self.table!r} is finished: both syncs are stopped for good")
        began, drained = self._drain_and_stop("rollback", self.backward, BACKWARD, "MongoDB")
        if resume_forward:
            self.forward.start()
        self.state.update_migration(writer=WRITER_DYNAMODB, phase=Phase.ROLLED_BACK, rolled_back_at=now())
        log.info("%s: rolled back; DynamoDB is the writer again (forward sync %s)", self.table,
                 "resumed" if resume_forward else "stays stopped")
        return {"writer": WRITER_DYNAMODB, "began": began, "forward_resumed": resume_forward, **drained}

    def _drain_and_stop(self, operation: str, sync: Switches, direction: str, writer: str
                        ) -> tuple[dt.datetime, dict[str, Any]]:
        """The hand-over, either way: once ``sync`` applied every write made in ``writer`` before now,
        it stops. Returns when the operation began and what the drain saw."""
        began = now()
        log.info("%s: %s began; waiting for %s sync to apply every %s write", self.table, operation, direction, writer)
        drained = _drain(sync, direction, began, self.quiet_seconds, self.timeout_seconds, self.poll_seconds, writer)
        sync.stop()
        _wait(sync.stopped, self.timeout_seconds, self.poll_seconds, f"{direction} sync stopping")
        return began, drained

    def finish(self, collection: Any, dynamodb: Any, source_table: str, strip_metadata: bool = False,
               disable_stream: bool = False) -> dict[str, Any]:
        migration = self.state.migration()
        if migration.phase != Phase.FINISHED and migration.writer != WRITER_MONGODB:
            raise OperationRefused(
                f"table {self.table!r} is not cut over (phase {migration.phase or 'not started'}): finish ends the "
                f"migration with MongoDB as the writer; cut over first"
            )
        self.forward.stop()
        self.backward.stop()
        _wait(lambda: self.forward.stopped() and self.backward.stopped(), self.timeout_seconds, self.poll_seconds,
              "both syncs stopping")
        facts: dict[str, Any] = {"writer": WRITER_MONGODB}
        if strip_metadata:
            facts["metadata_removed"] = collection.update_many({"_ddb": {"$exists": True}}, {"$unset": {"_ddb": ""}}).modified_count
        if disable_stream and migration.stream_enabled_by_us:
            description = dynamodb.describe_table(TableName=source_table)["Table"]
            if (description.get("StreamSpecification") or {}).get("StreamEnabled"):
                dynamodb.update_table(TableName=source_table, StreamSpecification={"StreamEnabled": False})
            facts["stream_disabled"] = True
        elif disable_stream:
            facts["stream_disabled"] = False
            log.info("%s: the stream was there before the migration; it is left enabled", self.table)
        self.state.update_migration(phase=Phase.FINISHED, finished_at=now())
        return facts
