"""The monitor DAG's task: sample every table's lag (dynamo2mongo.operations.monitor), notify breaches and quarantines."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context

from dynamo2mongo.config import Configuration, TableConfig
from dynamo2mongo.sync.lag import LagReport
from dynamo2mongo.operations.monitor import check, commit
from dynamo2mongo_airflow.triggers import ForwardLagProbe
from dynamo2mongo_airflow.connections import clients_by_connection
from dynamo2mongo_airflow.notify import send


def _measure_lambda(table: TableConfig) -> LagReport:
    with ForwardLagProbe(table) as probe:
        return probe.measure()


class MonitorLagOperator(BaseOperator):
    """Records forward and backward lag of every configured table and notifies on breaches.

    A breach (lag above ``on_call.lag_alert_seconds``, or a failed relay, mapping or retention check)
    alerts the targets that hear ``lag_breach`` once, and those that hear ``lag_recovered`` when it
    ends. A table's sync quarantine alerts ``quarantine`` when it stops being empty and
    ``quarantine_cleared`` when it is empty again. An alert that could not be sent is raised again by the next run. The task fails after the
    pass when an alert could not be sent or a table could not be checked (the other tables are), so
    the failure itself reaches the targets that hear failures.

    :param configuration: every table's configuration, as the monitor DAG parsed it.
    """

    ui_color = "#f0f4e8"

    def __init__(self, *, configuration: Configuration, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.configuration = configuration

    def execute(self, context: Context) -> list[dict[str, Any]]:
        configuration = self.configuration
        with clients_by_connection() as client_for:
            monitored = check(client_for, configuration, measure_lambda=_measure_lambda)
            alerts = monitored.alerts
            failures = [f"could not check {error}" for error in monitored.errors]
            for alert in alerts:
                self.log.warning("%s: %s", alert.subject, alert.message)
                failed = send(configuration.monitor, alert.event, alert.table, alert.subject, alert.message, context)
                if failed:
                    failures += [f"could not send every notification: {f}" for f in failed]
                else:
                    commit(client_for(configuration.table(alert.table)), alert)
        self.log.info("monitored %d table(s): %d alert(s)", len(configuration.tables), len(alerts))
        if failures:
            raise RuntimeError("; ".join(failures))
        return [a.as_dict() for a in alerts]
