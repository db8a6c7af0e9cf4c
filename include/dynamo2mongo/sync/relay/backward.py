"""The change-stream relay: backward sync from MongoDB to DynamoDB (DESIGN §2, §6, §7).

It watches the table's collection with post-images (exact ones where the collection keeps them,
``changeStreamPreAndPostImages``; else ``fullDocument: updateLookup``), applies
events in batches through ``dynamo2mongo.sync.backward``, and saves the stream's resume token after each
applied batch, so a relay killed at any point resumes after the last applied batch. A first start
records the moment it began, so that a restart before the first event misses nothing either.
It starts once forward sync has caught up: backward sync is CDC only, and until then MongoDB holds
only what forward sync wrote.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from bson import Timestamp
from pymongo.errors import PyMongoError

from dynamo2mongo.sync import backward
from dynamo2mongo.sync.events import ensure_images, images_enabled, to_event
from dynamo2mongo.sync.checkpoints import CheckpointStore, Heartbeat, RelayStatus, now
from dynamo2mongo.config import TableConfig
from dynamo2mongo.sync.echo import TO_MONGODB, EchoLedger
from dynamo2mongo.sync.keystate import KeyStates
from dynamo2mongo.sync.lag import backward_relay_lag
from dynamo2mongo.sync.lag_history import LagSampler
from dynamo2mongo.sync.quarantine import Quarantine
from dynamo2mongo.sync.typememory import TableTypes
from dynamo2mongo.sync.relay.forward import RelayError
from dynamo2mongo.state import PauseFlag, Phase, StateStore

log = logging.getLogger(__name__)

DIRECTION = "backward"
POSITION = "change_stream"


class BackwardRelay:
    def __init__(
        self,
        config: TableConfig,
        dynamodb: Any,
        mongo: Any,
        *,
        batch_max: int = 500,
        batch_seconds: float = 0.5,
        poll_seconds: float = 1.0,
        stop: threading.Event | None = None,
    ):
        self.config = config
        self.dynamodb = dynamodb
        self.meta = mongo[config.metadata_database]
        self.collection = mongo[config.database][config.collection]
        self.state = StateStore(self.meta, config.name)
        self.checkpoints = CheckpointStore(self.meta, config.name, DIRECTION)
        self.heartbeat = Heartbeat(self.meta, config.name, DIRECTION)
        self.lag_sampler = LagSampler(self.meta, config.name, DIRECTION, lambda at: backward_relay_lag(
            self.meta, config.name, config.sync.heartbeat_timeout_seconds, at))
        self.ledger = EchoLedger(self.meta, config.name)
        self.keys = KeyStates(self.meta, config.name)
        self.quarantine = Quarantine(self.meta, config.name)
        self.types = TableTypes(self.meta, config.name)
        self.exact_images = False
        self.batch_max = batch_max
        self.batch_seconds = batch_seconds
        self.poll_seconds = poll_seconds
        self.stop = stop or threading.Event()
        self.key_attrs: tuple[str, ...] = ()
        self.key_types: dict[str, str] | None = None
        self.totals = backward.BackwardResult()
        self.batches = 0
        self.caught_up_at: Any = None
        self.paused = PauseFlag(self.state, DIRECTION)
        self._stream: Any = None

    def wait_until_ready(self) -> bool:
        while not self.stop.is_set():
            migration = self.state.migration()
            # Once finished, the control flag keeps the relay paused.
            if migration.reached(Phase.FORWARD_CAUGHT_UP) or migration.sync_started(DIRECTION):
                self.key_attrs = migration.key_attrs
                key = migration.key
                self.key_types = key.types if key is not None else None
                if not self.key_attrs:
                    raise RelayError(f"table {self.config.name!r}: the migration state names no key; run preflight first")
                return True
            self.heartbeat.beat(RelayStatus.WAITING_FOR_FORWARD, phase=migration.phase)
            self.stop.wait(self.poll_seconds)
        return False

    def _stream_options(self) -> dict[str, Any]:
        checkpoint = self.checkpoints.load().get(POSITION)
        if checkpoint is None:
            # Forward sync's writes made before this stream starts have change events this relay
            # will never read: left pending, they would make it take a later application change of
            # the key (a delete, a replace that copied the mark) for their echo. Writes only noted
            # may be made after the start and stay. (One made within the start's second is read as
            # an application change: it carries what DynamoDB holds, so writing it changes nothing.)
            self.ledger.forget_written(TO_MONGODB)
            start = Timestamp(int(time.time()), 0)
            self.checkpoints.save(POSITION, start_at=start, token=None)
            return {"start_at_operation_time": start}
        if checkpoint.get("token") is not None:
            return {"resume_after": checkpoint["token"]}
        return {"start_at_operation_time": checkpoint["start_at"]}

    def _next_batch(self, stream: Any) -> list[dict[str, Any]]:
        changes: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.batch_seconds
        while len(changes) < self.batch_max and time.monotonic() < deadline and not self.stop.is_set():
            change = stream.try_next()
            if change is None:
                if changes:
                    break
                continue
            changes.append(change)
        return changes

    def _apply(self, changes: list[dict[str, Any]]) -> backward.BackwardResult:
        events = [e for e in (to_event(c, self.config.collection) for c in changes) if e is not None]
        result = backward.apply_events(
            events,
            dynamodb=self.dynamodb,
            source_table=self.config.source_table,
            key_attrs=self.key_attrs,
            collection=self.collection,
            ledger=self.ledger,
            policy=self.config.sync.conflict_policy,
            keys=self.keys,
            quarantine=self.quarantine,
            exact_images=self.exact_images,
            bson_mapping=self.config.sync.bson_mapping,
            key_types=self.key_types,
            types=self.types,
        )
        progress = {"token": changes[-1]["_id"], "newest_at": result.newest_at}
        if result.newest_independent is not None:
            progress["newest_independent"] = result.newest_independent
        self.checkpoints.save(POSITION, **progress)
        self.batches += 1
        self.totals.add(result)
        log.debug("applied %s", result.counts())
        return result

    def _facts(self) -> dict[str, Any]:
        return {"engine": "relay", "batches": self.batches, "counts": self.totals.counts(),
                "newest_at": self.totals.newest_at, "newest_independent": self.totals.newest_independent}

    def _open(self) -> Any:
        # Exact post-images where the collection keeps them (MongoDB 6+, enabled by preflight);
        # otherwise looked up, which apply_events is written to stay correct with.
        self.exact_images = images_enabled(self.collection)
        images = ({"full_document": "whenAvailable", "full_document_before_change": "whenAvailable"}
                  if self.exact_images else {"full_document": "updateLookup"})
        return self.collection.watch(max_await_time_ms=200, **images, **self._stream_options())

    def step(self) -> int:
        """Read the changes available now (one batch at most) and apply them; returns how many.

        The change stream stays open between steps; ``close()`` ends it (a restart resumes from the
        checkpoint).
        """
        if self._stream is None:
            self._stream = self._open()
        asked_at = now()
        changes = self._next_batch(self._stream)
        if changes:
            self._apply(changes)
        if len(changes) < self.batch_max:
            # The stream had nothing more: every change made before asking is applied.
            self.caught_up_at = asked_at
            self.checkpoints.save(POSITION, caught_up_at=asked_at)
        return len(changes)

    def close(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            stream.close()

    def start(self) -> bool:
        """Wait for forward sync to catch up and note that backward sync runs; False when stopped."""
        if not self.wait_until_ready():
            return False
        self.ledger.ensure_indexes()
        problem = ensure_images(self.collection)
        if problem:
            log.warning("backward relay of %s: %s", self.config.name, problem)
        self.state.update_migration(backward_sync_started=True, backward={"engine": "relay"})
        return True

    def run(self) -> backward.BackwardResult:
        if not self.start():
            return self.totals
        log.info("backward relay of %s: applying changes of %s.%s to %s", self.config.name, self.config.database,
                 self.config.collection, self.config.source_table)
        backoff = self.poll_seconds
        while not self.stop.is_set():
            if self.paused():
                # Stopped by an operation (rollback, finish); the resume token keeps the position.
                self.close()
                self.heartbeat.beat(RelayStatus.PAUSED, **self._facts())
                self.stop.wait(self.poll_seconds)
                continue
            try:
                self.step()
                self.heartbeat.beat(RelayStatus.APPLYING, caught_up_at=self.caught_up_at, **self._facts())
                self.lag_sampler.maybe_record()
                backoff = self.poll_seconds
            except (BotoCoreError, ClientError, PyMongoError) as error:
                # Network blips, throttling and elections heal; the stream reopens at the checkpoint.
                log.warning("backward relay of %s: %s; retrying in %.0f s", self.config.name, error, backoff)
                self.close()
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)
        self.close()
        self.heartbeat.beat(RelayStatus.STOPPED, force=True, **self._facts())
        return self.totals
