"""Operators and sensors of the sync phases. Each is idempotent: clearing and re-running it is safe."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from airflow.sdk import BaseSensorOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from dynamo2mongo.state import Phase
from dynamo2mongo.sync.checkpoints import now, relay_beat
from dynamo2mongo.config import TableConfig
from dynamo2mongo_airflow.base import TableOperator, run_config
from dynamo2mongo_airflow.connections import Connections
from dynamo2mongo_airflow.triggers import ForwardLagTrigger, watch_lag


class RelayRunningSensor(BaseSensorOperator):
    """Wait until the table's relay of one direction beats and applies (``dynamo2mongo relay <direction>``).

    The relays are long-running services outside Airflow (systemd units, Kubernetes deployments);
    this task only checks that one runs. A relay that reported a fatal error fails the task at once.
    Polls in reschedule mode rather than deferring: a relay is a service started before its run, so
    the first poke normally passes, and between pokes the task holds no worker slot.

    :param table: the table's configuration, as the DAG factory parsed it.
    :param direction: ``forward`` (DynamoDB to MongoDB) or ``backward`` (MongoDB to DynamoDB).
    """

    def __init__(self, *, table: TableConfig, direction: str, **kwargs: Any) -> None:
        kwargs.setdefault("poke_interval", 5)
        kwargs.setdefault("timeout", 60 * 60)
        kwargs.setdefault("mode", "reschedule")
        super().__init__(**kwargs)
        self.table = table
        self.direction = direction

    def poke(self, context: Context) -> bool:
        config = run_config(self.table, context)
        with Connections(config) as connections:
            beat = relay_beat(connections.meta(), config.name, self.direction)
        command = f"dynamo2mongo relay {self.direction} --table {config.name}"
        if beat is None:
            self.log.info("no heartbeat from the %s relay of %s yet; start it with `%s`", self.direction, config.name,
                          command)
            return False
        at = now()
        if beat.failed:
            raise AirflowFailException(
                f"the {self.direction} relay of {config.name} on {beat.host} stopped with an error: "
                f"{beat.error}. Fix the cause, restart it (`{command}`), then clear this task"
            )
        self.log.info("%s relay of %s on %s: %s, heartbeat %.0f s ago", self.direction, config.name, beat.host,
                      beat.status, beat.age(at))
        return beat.applies(at, config.sync.heartbeat_timeout_seconds)


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

    def run(self, config: TableConfig, context: Context) -> dict[str, Any]:
        if self.deferrable:
            self.defer(trigger=ForwardLagTrigger(config=config.as_json()), method_name="execute_complete")
        outcome = asyncio.run(watch_lag(config, self.log))
        return self.execute_complete(context, ForwardLagTrigger.event(*outcome))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        config = self.table_config(context)
        report = event.get("report") or {}
        with self.closing_connections():
            state = self.state(config)
            if event.get("status") != "success":
                state.update_migration(forward_lag=report)
                raise AirflowFailException(f"forward sync of {config.name}: {event.get('message')}")
            state.update_migration(phase=Phase.FORWARD_CAUGHT_UP, last_run_id=context["run_id"], forward_lag=report,
                                   forward_caught_up_at=dt.datetime.now(dt.timezone.utc))
        self.log.info("forward sync of %s caught up: %s", config.name, report.get("detail"))
        return report
