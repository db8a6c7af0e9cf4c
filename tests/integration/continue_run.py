"""Run the cleared tasks of an existing DAG run to its end, the way ``airflow dags test`` runs a new run.

Usage (with the Airflow environment of the test): ``python continue_run.py DAG_ID RUN_ID``.

``airflow dags test`` first clears every task instance at its logical date, then deletes the run there
and starts a new one with a new run id: it cannot show what clearing does to a run, whose durable state
(the export's ClientToken, the state recorded per run and per file) is keyed by its run id. Without a
scheduler, this script stands in for one: it calls the same ``DAG.test`` loop on the given run, minus
those two resets, so only the tasks that ``airflow tasks clear`` cleared run again.
"""

from __future__ import annotations

import sys
from unittest import mock

from sqlalchemy import select


def main(dag_id: str, run_id: str) -> int:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.serialization.definitions.dag import SerializedDAG
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    dag = DagBag().get_dag(dag_id)
    with create_session() as session:
        logical_date = session.scalar(
            select(DagRun.logical_date).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
        )

    def the_cleared_run(*, dag, session, **_):
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        run.state = DagRunState.RUNNING
        session.commit()
        run.dag = dag
        return run

    with mock.patch("airflow.models.dagrun.get_or_create_dagrun", the_cleared_run), \
            mock.patch.object(SerializedDAG, "clear_dags"):
        run = dag.test(logical_date=logical_date)
    with create_session() as session:
        unsuccessful = [f"{ti.task_id}[{ti.map_index}]: {ti.state}" for ti in run.get_task_instances(session=session)
                        if ti.state != "success"]
    print(f"run {run.run_id} of {dag_id}: {run.state}; not successful: {', '.join(unsuccessful) or 'none'}")
    return 0 if run.state == DagRunState.SUCCESS else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
