"""The one lag loop (``watch_forward_lag``) that the lag sensor runs deferred and in a worker."""

from __future__ import annotations

import asyncio
import logging

from pymongo.errors import AutoReconnect

from dynamo2mongo.config import SyncConfig
from dynamo2mongo.sync.lag import LagReport, watch_forward_lag

SYNC = SyncConfig(lag_threshold_seconds=10, lag_consecutive_checks=2, lag_poll_seconds=5, retention_alarm_hours=1)
LOG = logging.getLogger("test_lag_loop")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeSource:
    """Measurements in order, each taken at the clock's time; an exception in the list is raised."""

    def __init__(self, clock: FakeClock, *results: LagReport | Exception) -> None:
        self.clock = clock
        self.results = list(results)
        self.taken_at: list[float] = []

    def __call__(self) -> LagReport:
        self.taken_at.append(self.clock.now)
        result = self.results.pop(0) if len(self.results) > 1 else self.results[0]
        if isinstance(result, Exception):
            raise result
        return result


def _watch(source: FakeSource, clock: FakeClock, sync: SyncConfig = SYNC):
    return asyncio.run(watch_forward_lag(source, "orders", sync, LOG, clock=clock, sleep=clock.sleep))


def test_caught_up_after_consecutive_checks_under_the_threshold_one_poll_apart():
    clock = FakeClock()
    source = FakeSource(clock, LagReport(50, "behind"), LagReport(3, "a"), LagReport(20, "b"), LagReport(2, "c"),
                        LagReport(1, "d"))
    outcome = _watch(source, clock)
    assert outcome.caught_up and outcome.message is None
    assert outcome.report == {"lag_seconds": 1, "detail": "d", "fatal": None}
    assert source.taken_at == [0, 5, 10, 15, 20]


def test_a_failed_measurement_is_taken_again_at_the_next_poll(caplog):
    clock = FakeClock()
    source = FakeSource(clock, LagReport(1, "a"), AutoReconnect("primary stepped down"), LagReport(1, "b"))
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        outcome = _watch(source, clock)
    assert outcome.caught_up and source.taken_at == [0, 5, 10]
    assert "primary stepped down" in caplog.text


def test_a_fatal_report_fails_at_once_with_its_reason():
    clock = FakeClock()
    source = FakeSource(clock, LagReport(1, "a"), LagReport(None, "mapping", fatal="the mapping is Disabled"))
    outcome = _watch(source, clock)
    assert outcome == (False, "the mapping is Disabled", {"lag_seconds": None, "detail": "mapping",
                                                          "fatal": "the mapping is Disabled"})


def test_gives_up_once_unapplied_records_could_be_retention_alarm_hours_old():
    clock = FakeClock()
    outcome = _watch(FakeSource(clock, LagReport(60, "behind")), clock)
    assert not outcome.caught_up and outcome.report is None
    assert outcome.message == ("forward sync of orders did not catch up within 3600 s (threshold 10 s); "
                               "see the relay's or the function's logs")
    assert 3600 < clock.now <= 3600 + SYNC.lag_poll_seconds
