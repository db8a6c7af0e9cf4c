"""The self-hosted forward relay: polls every shard of the table's stream and applies its records.

It is the Lambda engine's stand-in where Lambda is not wanted (and the sandbox's engine): the same
apply function, with the shard bookkeeping Lambda's event source mapping would do:

- Shards are read parents before children: a child shard's records of a key follow its parent's,
  so a child starts only once its parent is closed and fully applied (or has aged out of the
  stream, in which case there is nothing left to wait for).
- A record that cannot be converted or written is quarantined (dynamo2mongo.sync.quarantine) and the
  shard goes on: one bad item never stalls the table.
- After each applied batch the shard's checkpoint (the last sequence number) is saved; a relay
  killed at any point resumes after it, at worst applying the same records again, which
  changes nothing.
- An expired iterator is renewed from the checkpoint; a trimmed one (records gone before they were
  applied) stops the relay loudly, since that loss cannot be repaired by syncing.
- It does not apply anything before the table's full load is reconciled: records applied while the
  import still ran could be overwritten by older exported items.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pymongo.database import Database
from pymongo.errors import PyMongoError

from dynamo2mongo.aws_errors import error_code
from dynamo2mongo.sync import forward
from dynamo2mongo.sync.checkpoints import CheckpointStore, Heartbeat, RelayStatus, now
from dynamo2mongo.config import TableConfig
from dynamo2mongo.sync.echo import EchoLedger
from dynamo2mongo.sync.keystate import KeyStates
from dynamo2mongo.sync.lag import relay_lag
from dynamo2mongo.sync.lag_history import LagSampler
from dynamo2mongo.sync.quarantine import Quarantine
from dynamo2mongo.sync.typememory import TableTypes
from dynamo2mongo.state import PauseFlag, Phase, StateStore
from dynamo2mongo.errors import Permanent

log = logging.getLogger(__name__)

DIRECTION = "forward"


class RelayError(Permanent, RuntimeError):
    """The relay cannot go on without losing data; the message says what happened and what to do."""


@dataclass
class ShardState:
    shard_id: str
    parent: str | None
    seq: str | None = None
    done: bool = False
    iterator: str | None = None
    caught_up_at: dt.datetime | None = None


@dataclass
class Totals:
    batches: int = 0
    result: forward.ApplyResult = field(default_factory=forward.ApplyResult)


class ForwardRelay:
    """One table's forward relay. ``run()`` loops until ``stop`` is set; ``step()`` is one pass."""

    def __init__(
        self,
        config: TableConfig,
        dynamodb: Any,
        streams: Any,
        mongo: Any,
        *,
        poll_seconds: float = 1.0,
        shard_refresh_seconds: float = 30.0,
        stop: threading.Event | None = None,
        on_batch: Callable[[forward.ApplyResult], None] | None = None,
    ):
        self.config = config
        self.dynamodb = dynamodb
        self.streams = streams
        self.meta: Database = mongo[config.metadata_database]
        self.collection = mongo[config.database][config.collection]
        self.keys = KeyStates(self.meta, config.name)
        self.quarantine = Quarantine(self.meta, config.name)
        self.state = StateStore(self.meta, config.name)
        self.checkpoints = CheckpointStore(self.meta, config.name, DIRECTION)
        self.heartbeat = Heartbeat(self.meta, config.name, DIRECTION)
        self.lag_sampler = LagSampler(self.meta, config.name, DIRECTION, lambda at: relay_lag(
            self.meta, config.name, self.stream_arn, config.sync.heartbeat_timeout_seconds,
            config.sync.retention_alarm_hours, at))
        self.poll_seconds = poll_seconds
        self.shard_refresh_seconds = shard_refresh_seconds
        self.stop = stop or threading.Event()
        self.on_batch = on_batch
        self.shards: dict[str, ShardState] = {}
        self.stream_arn: str | None = None
        self.key_attrs: tuple[str, ...] = ()
        self.totals = Totals()
        self.ledger = EchoLedger(self.meta, config.name)
        self.sync = forward.SyncContext(self.ledger, config.sync.conflict_policy, dynamodb, config.source_table,
                                        TableTypes(self.meta, config.name))
        self._refreshed = 0.0
        self.paused = PauseFlag(self.state, DIRECTION)

    # ---- setup --------------------------------------------------------------------------------

    def wait_until_ready(self) -> bool:
        """Heartbeat while the full load is not reconciled yet; False when stopped meanwhile."""
        while not self.stop.is_set():
            migration = self.state.migration()
            # Once finished, the control flag keeps the relay paused: the full load stays reconciled.
            if migration.reached(Phase.FULL_LOAD_DONE) or migration.sync_started(DIRECTION):
                self.stream_arn = migration.stream_arn
                self.key_attrs = migration.key_attrs
                if not self.stream_arn or not self.key_attrs:
                    raise RelayError(
                        f"table {self.config.name!r}: the migration state names no stream or key; run the DAG's "
                        f"preflight and enable_stream tasks first"
                    )
                return True
            self.heartbeat.beat(RelayStatus.WAITING_FOR_FULL_LOAD, phase=migration.phase)
            self.stop.wait(self.poll_seconds)
        return False

    def refresh_shards(self) -> None:
        """DescribeStream (all pages) merged with the saved checkpoints."""
        listed: list[dict[str, Any]] = []
        start: str | None = None
        while True:
            kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
            if start:
                kwargs["ExclusiveStartShardId"] = start
            description = self.streams.describe_stream(**kwargs)["StreamDescription"]
            if description.get("StreamStatus") in ("DISABLING", "DISABLED"):
                raise RelayError(
                    f"table {self.config.name!r}: stream {self.stream_arn} is {description['StreamStatus']}; "
                    f"changes are no longer captured. Enable it again (clear enable_stream) and redo the full load"
                )
            listed.extend(description.get("Shards", []))
            start = description.get("LastEvaluatedShardId")
            if not start:
                break
        saved = self.checkpoints.load(self.stream_arn)
        for shard in listed:
            shard_id = shard["ShardId"]
            if shard_id in self.shards:
                continue
            checkpoint = saved.get(shard_id) or {}
            self.shards[shard_id] = ShardState(
                shard_id=shard_id,
                parent=shard.get("ParentShardId"),
                seq=checkpoint.get("seq"),
                done=bool(checkpoint.get("done")),
            )
        self._refreshed = time.monotonic()

    def _ready(self, shard: ShardState) -> bool:
        if shard.done:
            return False
        parent = self.shards.get(shard.parent) if shard.parent else None
        return parent is None or parent.done

    # ---- reading ------------------------------------------------------------------------------

    def _iterator(self, shard: ShardState) -> str:
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard.shard_id}
        if shard.seq:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=shard.seq.lstrip("0") or "0")
        else:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        try:
            return self.streams.get_shard_iterator(**kwargs)["ShardIterator"]
        except ClientError as error:
            if error_code(error) == "TrimmedDataAccessException":
                raise self._trimmed(shard) from error
            if error_code(error) == "ResourceNotFoundException":
                # The shard aged out of the stream (24 h): whatever it held is gone from the stream.
                raise self._trimmed(shard) from error
            raise

    def _trimmed(self, shard: ShardState) -> RelayError:
        return RelayError(
            f"table {self.config.name!r}: records of shard {shard.shard_id} after sequence number "
            f"{shard.seq or 'TRIM_HORIZON'} were trimmed from the stream (24 h retention) before they were applied. "
            f"MongoDB may miss those changes: redo the full load (a new DAG run), then restart the relay"
        )

    def _read(self, shard: ShardState) -> tuple[list[dict[str, Any]], str | None]:
        for _ in range(3):
            if shard.iterator is None:
                shard.iterator = self._iterator(shard)
            try:
                response = self.streams.get_records(ShardIterator=shard.iterator, Limit=self.config.sync.batch_size)
            except ClientError as error:
                if error_code(error) == "ExpiredIteratorException":
                    shard.iterator = None
                    continue
                if error_code(error) == "TrimmedDataAccessException":
                    raise self._trimmed(shard) from error
                raise
            return response.get("Records", []), response.get("NextShardIterator")
        raise RelayError(f"table {self.config.name!r}: shard {shard.shard_id} keeps returning expired iterators")

    # ---- the loop -----------------------------------------------------------------------------

    def _poll_shard(self, shard: ShardState) -> int:
        asked_at = now()
        records, next_iterator = self._read(shard)
        fields: dict[str, Any] = {"stream": self.stream_arn, "parent": shard.parent}
        if records:
            result = forward.apply_records(
                records,
                self.collection,
                self.keys,
                self.config.name,
                self.key_attrs,
                self.config.number_mapping,
                sync=self.sync,
                quarantine=self.quarantine,
            )
            for change, reason in result.failed:
                log.error("table %s: MongoDB refused _id=%r (sequence number %s): %s; quarantined",
                          self.config.name, change.id, change.seq.lstrip("0"), reason)
            shard.seq = result.last_seq
            fields.update(seq=shard.seq, newest_created=result.newest_created)
            if result.newest_independent is not None:
                fields["newest_independent"] = result.newest_independent
            log.debug("shard %s: %s up to %s", shard.shard_id, result.counts(), shard.seq.lstrip("0"))
            self.totals.batches += 1
            self.totals.result.add(result)
            if self.on_batch is not None:
                self.on_batch(result)
        shard.iterator = next_iterator
        if next_iterator is None:
            shard.done = True
        if len(records) < self.config.sync.batch_size:
            # Everything that existed when this read was asked for is now applied.
            shard.caught_up_at = asked_at
            fields["caught_up_at"] = asked_at
        fields["done"] = shard.done
        self.checkpoints.save(shard.shard_id, **fields)
        return len(records)

    def step(self) -> int:
        """Poll each ready shard once; returns the number of records read."""
        if not self.shards or time.monotonic() - self._refreshed > self.shard_refresh_seconds:
            self.refresh_shards()
        read = 0
        for shard in sorted(self.shards.values(), key=lambda s: s.shard_id):
            if self._ready(shard):
                read += self._poll_shard(shard)
        return read

    def _facts(self) -> dict[str, Any]:
        open_shards = [s for s in self.shards.values() if not s.done]
        return {
            "engine": "relay",
            "stream": self.stream_arn,
            "open_shards": len(open_shards),
            "batches": self.totals.batches,
            "counts": self.totals.result.counts(),
            "newest_created": self.totals.result.newest_created,
            "newest_independent": self.totals.result.newest_independent,
        }

    def start(self) -> bool:
        """Wait for the full load and note that forward sync runs; False when stopped meanwhile."""
        if not self.wait_until_ready():
            return False
        self.ledger.ensure_indexes()
        self.state.update_migration(forward_sync_started=True, forward={"engine": "relay", "stream": self.stream_arn})
        return True

    def run(self) -> Totals:
        if not self.start():
            return self.totals
        log.info("forward relay of %s: applying %s to %s.%s", self.config.name, self.stream_arn,
                 self.config.database, self.config.collection)
        backoff = self.poll_seconds
        while not self.stop.is_set():
            try:
                if self.paused():
                    # Stopped by an operation (cut-over); the checkpoints keep the position.
                    self.heartbeat.beat(RelayStatus.PAUSED, **self._facts())
                    self.stop.wait(self.poll_seconds)
                    continue
                read = self.step()
                self.heartbeat.beat(RelayStatus.APPLYING, **self._facts())
                self.lag_sampler.maybe_record()
            except (BotoCoreError, ClientError, PyMongoError) as error:
                # Throttling, a network blip or a primary stepping down heal by themselves; every
                # shard restarts from its last applied record, so nothing is skipped.
                log.warning("forward relay of %s: %s; retrying in %.0f s", self.config.name, error, backoff)
                for shard in self.shards.values():
                    shard.iterator = None
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            backoff = self.poll_seconds
            if read == 0:
                self.stop.wait(self.poll_seconds)
        self.heartbeat.beat(RelayStatus.STOPPED, force=True, **self._facts())
        return self.totals
