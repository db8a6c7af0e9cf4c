"""Airflow glue of table-by-table plans: the run gate and the full-load deadline alert (dynamo2mongo.operations.plan)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from airflow.sdk import Context, SkipMixin
from airflow.sdk.exceptions import AirflowFailException

from dynamo2mongo.config import TableConfig
from dynamo2mongo.operations.plan import full_load_risk, gate
from dynamo2mongo_airflow.base import TableOperator
from dynamo2mongo_airflow.connections import Connections

log = logging.getLogger(__name__)


class RunGateOperator(TableOperator, SkipMixin):
    """First task of a migration DAG: decide whether this run may do the table's full load.

    Skips the whole run (every downstream task, whatever its trigger rule) when a schedule tick or an
    upstream wave's milestone asks for a full load that another run already finished, or for a table
    that was cut over; fails a manual run on a cut-over table. See ``dynamo2mongo.operations.plan.gate``.
    """

    ui_color = "#f4f0e8"

    def run(self, config: TableConfig, context: Context) -> dict[str, Any]:
        dag_run = context["dag_run"]
        run_type = str(getattr(dag_run.run_type, "value", dag_run.run_type))
        decision = gate(config.name, self.state(config).migration(), context["run_id"], run_type)
        self.log.info("%s: %s", decision.action, decision.reason)
        if decision.action == "refuse":
            raise AirflowFailException(decision.reason)
        if decision.action == "skip":
            self.skip(ti=context["ti"], tasks=[t for t in self.get_flat_relatives(upstream=False) if not t.is_teardown])
        return {"action": decision.action, "reason": decision.reason}


def _check_run(config: TableConfig, run_id: str | None, deadline: Any) -> str | None:
    with Connections(config) as connections:
        state = connections.state()
        alert = full_load_risk(config, state.migration(), run_id or "?")
        if alert is not None:
            state.update_migration(alert={"kind": "full_load_deadline", "run_id": run_id, "message": alert,
                                          "deadline": deadline, "at": dt.datetime.now(dt.timezone.utc)})
        return alert


async def full_load_at_risk(config: dict[str, Any], context: dict[str, Any] | None = None) -> str:
    """Deadline callback (runs in the triggerer): the run is still going when its deadline passed.

    Alerts, in the triggerer's log and as ``alert`` in the table's migration state (shown by
    ``dynamo2mongo status``), unless forward sync has caught up meanwhile and only later steps (indexes,
    verification) are still running. Route the log line to your paging system, or wrap this callback
    with a notifier.

    :param config: the table's configuration as the DAG was built from it (``TableConfig.as_json``):
        the triggerer never reads the configuration file.
    """
    context = context or {}
    run_id = (context.get("dag_run") or {}).get("run_id")
    deadline = (context.get("deadline") or {}).get("deadline_time")
    table = TableConfig.from_json(config)
    alert = await asyncio.to_thread(_check_run, table, run_id, deadline)
    if alert is None:
        message = f"table {table.name!r}: run {run_id} passed its full-load deadline after forward sync caught up: no risk"
        log.info("%s", message)
        return message
    log.error("%s", alert)
    return alert
