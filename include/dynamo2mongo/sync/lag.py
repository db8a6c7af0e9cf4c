"""How far forward sync is behind the source table, and when to stop waiting (DESIGN §2 lag sensor).

Lag is measured so that it stays right when the table is idle: for each open shard the relay
records ``caught_up_at``, the moment of its last read that returned everything then available.
Every record created before that moment is applied, so ``now - caught_up_at`` bounds how old an
unapplied record can be; the table's lag is the largest bound over its open shards. In Lambda mode
the same bound comes from CloudWatch's IteratorAge (the age of the last record read) and the event
source mapping's state.

``LagWatch`` turns successive measurements into a decision: caught up after N consecutive checks
under the threshold; failed when unapplied records near the stream's 24 h retention, the relay has
stopped, the mapping is disabled, or the function keeps failing. ``watch_forward_lag`` is the one
loop that measures until the watch decides: the lag sensor's trigger and its worker path both run it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError
from pymongo.database import Database
from pymongo.errors import PyMongoError

from dynamo2mongo.sync.checkpoints import CheckpointStore, RelayBeat, relay_beat

if TYPE_CHECKING:
    from dynamo2mongo.config import SyncConfig

DIRECTION = "forward"


@dataclass
class LagReport:
    lag_seconds: float | None
    detail: str
    fatal: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"lag_seconds": self.lag_seconds, "detail": self.detail, "fatal": self.fatal, **self.facts}


def _seconds(later: dt.datetime, earlier: dt.datetime | None) -> float | None:
    return None if earlier is None else max(0.0, (later - earlier).total_seconds())


def _retention_check(report: LagReport, alarm_hours: int) -> LagReport:
    if report.lag_seconds is not None and report.lag_seconds >= alarm_hours * 3600:
        report.fatal = (
            f"forward sync is {report.lag_seconds / 3600:.1f} h behind: unapplied stream records are nearing the "
            f"24 h retention of DynamoDB Streams (alarm at {alarm_hours} h). Speed up or restart the forward "
            f"engine now; records trimmed before they are applied force a new full load"
        )
    return report


def _beat_facts(beat: RelayBeat, at: dt.datetime) -> dict[str, Any]:
    return {"relay_status": beat.status, "heartbeat_age_seconds": round(beat.age(at), 1), "host": beat.host}


def relay_lag(meta: Database, table: str, stream_arn: str | None, heartbeat_timeout: float, alarm_hours: int,
              at: dt.datetime) -> LagReport:
    """The relay's lag from its heartbeat and shard checkpoints."""
    beat = relay_beat(meta, table, DIRECTION)
    if beat is None:
        return LagReport(None, "the forward relay has not started (no heartbeat)")
    beat_age = beat.age(at)
    facts = _beat_facts(beat, at)
    if beat.waiting:
        return LagReport(None, "the forward relay waits for the full load to finish", facts=facts)
    checkpoints = CheckpointStore(meta, table, DIRECTION).load(stream_arn)
    open_shards = [c for c in checkpoints.values() if not c.get("done")]
    facts["open_shards"] = len(open_shards)
    if not open_shards:
        return LagReport(None, "the forward relay has not read any shard yet", facts=facts)
    bounds = [_seconds(at, c.get("caught_up_at")) for c in open_shards]
    if any(b is None for b in bounds):
        oldest = min((c["updated_at"] for c in open_shards if c.get("updated_at")), default=None)
        lag = _seconds(at, oldest)
        report = LagReport(lag, "a shard has not reached its tip yet", facts=facts)
    else:
        lag = max(b for b in bounds if b is not None)
        report = LagReport(lag, f"{lag:.1f} s behind over {len(open_shards)} open shard(s)", facts=facts)
    report = _retention_check(report, alarm_hours)
    if report.fatal is None and beat.stopped:
        report.detail = f"the forward relay on {beat.host} has stopped; {report.detail}"
        report.lag_seconds = max(report.lag_seconds or 0.0, beat_age)
    elif report.fatal is None and beat.silent(at, heartbeat_timeout):
        # A dead relay applies nothing: its lag grows with its silence.
        report.detail = f"the forward relay's heartbeat is {beat_age:.0f} s old (pid {beat.pid} on {beat.host})"
        report.lag_seconds = max(report.lag_seconds or 0.0, beat_age)
    return report


def backward_relay_lag(meta: Database, table: str, heartbeat_timeout: float, at: dt.datetime) -> LagReport:
    """The backward relay's lag: how long ago it last read everything the change stream had."""
    beat = relay_beat(meta, table, "backward")
    if beat is None:
        return LagReport(None, "the backward relay has not started (no heartbeat)")
    beat_age = beat.age(at)
    facts = _beat_facts(beat, at)
    if beat.failed:
        return LagReport(None, f"the backward relay failed: {beat.error}", fatal=beat.error, facts=facts)
    if not beat.applying:
        return LagReport(None, f"the backward relay is {beat.status}", facts=facts)
    lag = _seconds(at, beat.caught_up_at)
    if beat.silent(at, heartbeat_timeout):
        return LagReport(max(lag or 0.0, beat_age), f"the backward relay's heartbeat is {beat_age:.0f} s old", facts=facts)
    if lag is None:
        return LagReport(None, "the backward relay has not reached the change stream's end yet", facts=facts)
    return LagReport(lag, f"{lag:.1f} s behind", facts=facts)


def lambda_lag(facts: dict[str, Any], alarm_hours: int) -> LagReport:
    """The Lambda engine's lag from its event source mapping and CloudWatch IteratorAge."""
    state = facts.get("state")
    result = str(facts.get("last_processing_result") or "")
    age = facts.get("iterator_age_seconds")
    if state in ("Disabled", "Disabling"):
        return LagReport(None, f"the event source mapping is {state}", fatal=(
            f"the forward-sync event source mapping {facts.get('uuid')} is {state}: stream records are not being "
            f"applied. Enable it (clear the forward_sync task) before the 24 h retention drops them"
        ), facts=facts)
    if state not in ("Enabled", "Updating"):
        return LagReport(None, f"the event source mapping is {state}", facts=facts)
    # No IteratorAge datapoint means no batch was read in the window: nothing arrived to apply.
    lag = float(age) if age is not None else 0.0
    report = LagReport(lag, f"IteratorAge {lag:.1f} s; last processing result: {result or 'none yet'}", facts=facts)
    if result.startswith("PROBLEM"):
        report.facts["failing"] = True
    return _retention_check(report, alarm_hours)


@dataclass
class LagWatch:
    """Consecutive checks under the threshold make success; failures that persist make failure."""

    threshold_seconds: float
    consecutive: int
    failing_checks_allowed: int = 10
    good: int = 0
    failing: int = 0

    def observe(self, report: LagReport) -> str:
        """'caught_up', 'waiting' or 'failed' (then the report's ``fatal`` says why)."""
        if report.fatal:
            return "failed"
        if report.facts.get("failing"):
            self.failing += 1
            if self.failing > self.failing_checks_allowed:
                report.fatal = (
                    f"the forward-sync function keeps failing ({report.facts.get('last_processing_result')}) over "
                    f"{self.failing} checks: read its CloudWatch logs; failed batches go to the on-failure destination"
                )
                return "failed"
        else:
            self.failing = 0
        if report.lag_seconds is not None and report.lag_seconds < self.threshold_seconds:
            self.good += 1
        else:
            self.good = 0
        return "caught_up" if self.good >= self.consecutive else "waiting"


# A measurement that fails on the network, a throttled or refused AWS call or a MongoDB error is
# taken again at the next poll: the watch decides on measurements, and one that failed says nothing.
MEASUREMENT_ERRORS = (BotoCoreError, ClientError, PyMongoError)


class LagOutcome(NamedTuple):
    """How a lag watch ended: caught up or not (``message`` says why), with the last report's facts."""

    caught_up: bool
    message: str | None
    report: dict[str, Any] | None


async def watch_forward_lag(
    measure: Callable[[], LagReport],
    table: str,
    sync: SyncConfig,
    log: logging.Logger,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> LagOutcome:
    """Measure every ``sync.lag_poll_seconds`` until the ``LagWatch`` decides, or give up once unapplied
    records could be ``sync.retention_alarm_hours`` old without a decision.

    ``measure`` blocks (pymongo, boto3), so it runs in a thread: the triggerer's event loop keeps
    serving its other triggers meanwhile.
    """
    watch = LagWatch(sync.lag_threshold_seconds, sync.lag_consecutive_checks)
    timeout = sync.retention_alarm_hours * 3600
    deadline = clock() + timeout
    while True:
        try:
            report = await asyncio.to_thread(measure)
        except MEASUREMENT_ERRORS as error:
            log.warning("measuring the forward lag of %s failed (%s); trying again", table, error)
        else:
            decision = watch.observe(report)
            log.info("forward lag of %s: %s (%s)", table, report.detail, decision)
            if decision != "waiting":
                return LagOutcome(decision == "caught_up", report.fatal, report.as_dict())
        if clock() > deadline:
            return LagOutcome(False, (
                f"forward sync of {table} did not catch up within {timeout} s (threshold "
                f"{sync.lag_threshold_seconds} s); see the relay's or the function's logs"), None)
        await sleep(sync.lag_poll_seconds)


def applied_through(meta: Database, table: str, stream_arn: str | None) -> dt.datetime | None:
    """The moment up to which every change of the table is applied (None: not known yet).

    A cut-over, or a test, that stopped writing at time T waits until this is past T: lag under a
    threshold only says that nothing older than the threshold is missing.
    """
    checkpoints = CheckpointStore(meta, table, DIRECTION).load(stream_arn)
    open_shards = [c for c in checkpoints.values() if not c.get("done")]
    if not open_shards or any(c.get("caught_up_at") is None for c in open_shards):
        return None
    return min(c["caught_up_at"] for c in open_shards)


def relay_drained(meta: Database, table: str, stream_arn: str | None, sync: SyncConfig, watch: LagWatch,
                  since: dt.datetime, at: dt.datetime) -> tuple[str, LagReport]:
    """One check, for whoever stopped writing at ``since`` and waits for the relay: the lag sensor's
    decision, but 'caught_up' only once every change made before ``since`` is applied too."""
    report = relay_lag(meta, table, stream_arn, sync.heartbeat_timeout_seconds, sync.retention_alarm_hours, at)
    decision = watch.observe(report)
    through = applied_through(meta, table, stream_arn)
    if decision == "caught_up" and (through is None or through <= since):
        decision = "waiting"
    return decision, report
