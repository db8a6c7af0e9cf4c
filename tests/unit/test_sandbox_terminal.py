"""What the sandbox prints while the DAG runs, from real `airflow dags test` log lines."""

from dynamo2mongo.sandbox.terminal import LogFollower, follow, plural

LINES = """\
2026-12-04T23:03:23.539072Z [info     ] [DAG TEST] starting task_id=backward_sync map_index=-1 [airflow.sdk.definitions.dag] loc=dag.py:1501
2026-12-04T23:03:18.389703Z [info     ] Task instance state updated    [airflow.api_fastapi.execution_api.routes.task_instances] correlation_id=01 loc=task_instances.py:485 new_state=up_for_reschedule
2026-12-04T23:03:18.426042Z [info     ] [DAG TEST] end task task_id=backward_sync map_index=-1 [airflow.sdk.definitions.dag] loc=dag.py:1563
2026-12-04T23:03:23.539072Z [info     ] [DAG TEST] starting task_id=backward_sync map_index=-1 [airflow.sdk.definitions.dag] loc=dag.py:1501
2026-12-04T23:03:18.389703Z [info     ] Task instance state updated    [airflow.api_fastapi.execution_api.routes.task_instances] correlation_id=01 loc=task_instances.py:485 new_state=up_for_reschedule
2026-12-04T23:03:18.426042Z [info     ] [DAG TEST] end task task_id=backward_sync map_index=-1 [airflow.sdk.definitions.dag] loc=dag.py:1563
2026-12-04T23:03:23.539072Z [info     ] [DAG TEST] starting task_id=load_file.convert map_index=0 [airflow.sdk.definitions.dag] loc=dag.py:1501
2026-12-04T23:03:24.209785Z [info     ] convert exports/x/data/a.ion.gz: 500/500 (100.0%), 5,576/s, done in 0.1s [dynamo2mongo.fullload.convert] loc=progress.py:50
2026-12-04T23:03:24.425343Z [info     ] Task instance state updated    [airflow.api_fastapi.execution_api.routes.task_instances] correlation_id=01 loc=task_instances.py:485 new_state=success
2026-12-04T23:03:24.452048Z [info     ] [DAG TEST] end task task_id=load_file.convert map_index=0 [airflow.sdk.definitions.dag] loc=dag.py:1563
2026-12-04T23:03:24.456316Z [info     ] DagRun Finished: dag_id=dynamo2mongo__sample_orders, logical_date=2026-12-04, run_id=manual__1, run_start_date=x, run_end_date=y, run_duration=25.8, state=success, run_type=manual [airflow.models.dagrun.DagRun] loc=dagrun.py:1
"""


def test_tasks_progress_and_the_run_are_printed_once_each(tmp_path):
    printed = []
    log = tmp_path / "sandbox.log"
    log.write_text("old line from an earlier step\n")
    with follow(log, LogFollower(printed.append), every=0.05):
        with log.open("a") as out:
            out.write(LINES)
    assert len(printed) == 6, printed
    assert printed[0].endswith("backward_sync: started")
    assert printed[1].endswith("backward_sync: up_for_reschedule"), "a reschedule is printed once, without a time"
    assert printed[2].endswith("load_file.convert[0]: started")
    assert printed[3].strip() == "convert exports/x/data/a.ion.gz: 500/500 (100.0%), 5,576/s, done in 0.1s"
    assert " load_file.convert[0]: success after " in printed[4]
    assert printed[5].endswith("run of dynamo2mongo__sample_orders: success")


def test_plural():
    assert plural(1, "data file") == "1 data file"
    assert plural(4, "data file") == "4 data files"
    assert plural(2_000, "item") == "2,000 items"
