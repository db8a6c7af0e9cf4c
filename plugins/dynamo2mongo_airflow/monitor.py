"""The monitor DAG's task: sample every table's lag (dynamo2mongo.monitor) and notify breaches."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context

from dynamo2mongo.config import load_configuration
from dynamo2mongo.monitor import check, commit
from dynamo2mongo_airflow.mongo_clients import clients_by_connection
from dynamo2mongo_airflow.notify import send


class MonitorLagOperator(BaseOperator):
    """Records forward and backward lag of every configured table and notifies on breaches.

    A breach (lag above ``on_call.lag_alert_seconds``, or a failed relay, mapping or retention check)
    alerts the targets that hear ``lag_breach`` once, and those that hear ``lag_recovered`` when it
    ends. An alert that could not be sent is raised again by the next run, and the task fails, so the
    failure itself reaches the targets that hear failures.
    """

    ui_color = "#f0f4e8"

    def execute(self, context: Context) -> list[dict[str, Any]]:
        configuration = load_configuration()
        with clients_by_connection() as client_for:
            alerts = check(client_for, configuration)
            failures = []
            for alert in alerts:
                self.log.warning("%s: %s", alert.subject, alert.message)
                failed = send(configuration.monitor, alert.event, alert.table, alert.subject, alert.message, context)
                if failed:
                    failures += failed
                else:
                    commit(client_for(configuration.table(alert.table)), alert)
        self.log.info("monitored %d table(s): %d alert(s)", len(configuration.tables), len(alerts))
        if failures:
            raise RuntimeError("could not send every notification: " + "; ".join(failures))
        return [a.as_dict() for a in alerts]
