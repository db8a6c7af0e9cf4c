"""Operators and sensors of the sync phases. Each is idempotent: clearing and re-running it is safe."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from airflow.providers.mongo.hooks.mongo import MongoHook
from airflow.sdk import BaseSensorOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from dynamo2mongo.sync.checkpoints import now, read_heartbeat
from dynamo2mongo.config import TableConfig
from dynamo2mongo.sync.lag import LagWatch
from dynamo2mongo_airflow.base import TableOperator
from dynamo2mongo_airflow.lag_probe import ForwardLagProbe
from dynamo2mongo_airflow.triggers import ForwardLagTrigger


class RelayRunningSensor(BaseSensorOperator):
    """Wait until the table's relay of one direction beats and applies (``dynamo2mongo relay <direction>``).

    The relays are long-running services outside Airflow (systemd units, Kubernetes deployments);
    this task only checks that one runs. A relay that reported a fatal error fails the task at once.

    :param table: the table's name in the table configuration (templated).
    :param direction: ``forward`` (DynamoDB to MongoDB) or ``backward`` (MongoDB to DynamoDB).
    """

    template_fields = ("table",)

    def __init__(self, *, table: str, direction: str, **kwargs: Any) -> None:
        kwargs.setdefault("poke_interval", 5)
        kwargs.setdefault("timeout", 60 * 60)
        kwargs.setdefault("mode", "reschedule")
        super().__init__(**kwargs)
        self.table = table
        self.direction = direction

    def poke(self, context: Context) -> bool:
        config = TableOperator(task_id="_", table=self.table).table_config(context)
        with MongoHook(mongo_conn_id=config.mongo_conn_id) as hook:
            beat = read_heartbeat(hook.get_conn()[config.metadata_database], config.name, self.direction)
        command = f"dynamo2mongo relay {self.direction} --table {config.name}"
        if beat is None:
            self.log.info("no heartbeat from the %s relay of %s yet; start it with `%s`", self.direction, config.name,
                          command)
            return False
        age = (now() - beat["beat_at"]).total_seconds()
        if beat.get("status") == "failed":
            raise AirflowFailException(
                f"the {self.direction} relay of {config.name} on {beat.get('host')} stopped with an error: "
                f"{beat.get('error')}. Fix the cause, restart it (`{command}`), then clear this task"
            )
        self.log.info("%s relay of %s on %s: %s, heartbeat %.0f s ago", self.direction, config.name, beat.get("host"),
                      beat.get("status"), age)
        return beat.get("status") == "applying" and age <= config.sync.heartbeat_timeout_seconds


class ForwardLagSensor(TableOperator):
    """Wait until forward sync has caught up: lag under the threshold for N consecutive checks.

    Lag is the bound computed by ``dynamo2mongo.sync.lag`` (relay checkpoints and heartbeat, or the
    Lambda mapping's IteratorAge). Fails long before unapplied records reach the stream's 24 h
    retention, when the relay stopped with an error, the mapping is disabled, or the function
    keeps failing. Records the last measurement in the migration state.

    :param deferrable: wait in the triggerer (default) rather than in a worker slot.
    """

    def __init__(self, *, deferrable: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable

    def _timeout(self, config: TableConfig) -> int:
        return config.sync.retention_alarm_hours * 3600

    def run(self, config: TableConfig, context: Context) -> dict[str, Any]:
        threshold = config.sync.lag_threshold_seconds
        if self.deferrable:
            self.defer(
                trigger=ForwardLagTrigger(table=config.name, threshold_seconds=threshold,
                                          timeout_seconds=self._timeout(config)),
                method_name="execute_complete",
            )
        probe = ForwardLagProbe(config.name)
        watch = LagWatch(threshold, config.sync.lag_consecutive_checks)
        deadline = time.monotonic() + self._timeout(config)
        try:
            while time.monotonic() < deadline:
                report = probe.measure()
                decision = watch.observe(report)
                self.log.info("forward lag of %s: %s (%s)", config.name, report.detail, decision)
                if decision != "waiting":
                    return self.execute_complete(context, {
                        "status": "success" if decision == "caught_up" else "failed",
                        "message": report.fatal, "report": report.as_dict()})
                time.sleep(config.sync.lag_poll_seconds)
        finally:
            probe.close()
        return self.execute_complete(context, {"status": "failed", "message": "timed out", "report": None})

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        config = self.table_config(context)
        report = event.get("report") or {}
        try:
            state = self.state(config)
            if event.get("status") != "success":
                state.update_migration(forward_lag=report)
                raise AirflowFailException(f"forward sync of {config.name}: {event.get('message')}")
            state.update_migration(phase="forward_caught_up", last_run_id=context["run_id"], forward_lag=report,
                                   forward_caught_up_at=dt.datetime.now(dt.timezone.utc))
        finally:
            if self._mongo is not None:
                self._mongo.close()
                self._mongo = None
        self.log.info("forward sync of %s caught up: %s", config.name, report.get("detail"))
        return report
