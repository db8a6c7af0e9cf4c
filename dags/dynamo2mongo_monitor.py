"""The monitor DAG: every few minutes, every configured table's forward and backward lag is recorded
for the migration dashboard, and lag breaches are sent to the configuration's notification targets."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from dynamo2mongo.config import Configuration, load_isolated
from dynamo2mongo_airflow.base import OnCallRetryPolicy
from dynamo2mongo_airflow.monitor import MonitorLagOperator
from dynamo2mongo_airflow.notify import failure_callbacks

DOC = """
### Lag monitor of every dynamo2mongo table

Every {every} min: records each table's forward and backward lag (the **Migrations** dashboard draws
them), and notifies the `monitor.notify` targets when a direction's lag stays above the table's
`on_call.lag_alert_seconds` or its relay, Lambda mapping or retention check fails — once when the
breach starts, once when it ends. Relays record their own lag every 15 s as well. Safe to clear.
"""


def build_monitor_dag(configuration: Configuration) -> DAG:
    monitor = configuration.monitor
    with DAG(
        dag_id="dynamo2mongo__monitor",
        description="Lag samples for the migration dashboard; notifications on lag breaches",
        doc_md=DOC.format(every=monitor.every_minutes),
        schedule=dt.timedelta(minutes=monitor.every_minutes),
        start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
        catchup=False,
        max_active_runs=1,
        # Read-only but for the lag samples: watching should start with the deployment.
        is_paused_upon_creation=False,
        tags=["dynamo2mongo", "monitor"],
        default_args={
            "owner": "data-platform",
            "retries": 1,
            "retry_delay": dt.timedelta(seconds=30),
            "retry_policy": OnCallRetryPolicy(),
            "execution_timeout": dt.timedelta(minutes=max(1, monitor.every_minutes)),
            "on_failure_callback": failure_callbacks(monitor, ""),
        },
    ) as dag:
        MonitorLagOperator(task_id="monitor_lag", configuration=configuration)
    return dag


# A table whose configuration is wrong is left out (its own DAG shows the error); the rest are watched.
dynamo2mongo__monitor = build_monitor_dag(load_isolated().configuration)
