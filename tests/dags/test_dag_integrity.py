"""DAG integrity: every DAG imports, is documented, tagged, owned and retried, with no top-level I/O."""

import socket
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag(monkeypatch_module):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


@pytest.fixture(scope="module")
def monkeypatch_module():
    patch = pytest.MonkeyPatch()

    def no_network(*args, **kwargs):
        raise AssertionError("DAG files must not open network connections at parse time")

    patch.setattr(socket.socket, "connect", no_network)
    yield patch
    patch.undo()


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.dags, "no DAG was built from the table configuration"


def test_one_dag_per_configured_table(dagbag):
    from dynamo2mongo.config import load_config

    assert {t.dag_id for t in load_config()} <= set(dagbag.dag_ids)


def test_dags_are_tagged_owned_retried_documented(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert "dynamo2mongo" in dag.tags, dag_id
        assert dag.doc_md, dag_id
        assert dag.max_active_runs == 1, dag_id
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", (dag_id, task.task_id)
            assert task.retries >= 1, (dag_id, task.task_id)
            assert task.execution_timeout is not None, (dag_id, task.task_id)


def test_params_are_described(dagbag):
    for dag in dagbag.dags.values():
        for name, param in dag.params.items():
            assert param.description, name


def test_full_load_chain(dagbag):
    dag = dagbag.dags["dynamo2mongo__sample_orders"]
    order = ["preflight", "enable_stream", "wait_stream_active", "export", "list_export_files"]
    for upstream, downstream in zip(order, order[1:]):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    assert "load_file.convert" in dag.get_task("list_export_files").downstream_task_ids
    assert "load_file.import" in dag.get_task("load_file.convert").downstream_task_ids
    assert "reconcile" in dag.get_task("load_file.import").downstream_task_ids
