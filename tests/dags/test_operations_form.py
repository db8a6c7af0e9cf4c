"""The trigger forms and the graph view: the operations form preselects nothing and asks for the table's
name before cut_over and rollback; each flag sits in the section of the operation it applies to; the
migration DAG's task groups leave every task id as it was."""

from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
TABLE_TASKS = {"gate", "preflight", "enable_stream", "wait_stream_active", "export", "list_export_files",
               "load_file.convert", "load_file.import", "reconcile", "forward_sync", "wait_forward_lag",
               "backward_sync", "create_indexes", "verify"}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_operation_is_not_preselected(dagbag):
    params = dagbag.dags["dynamo2mongo__sample_orders__operations"].params
    operation = params.get_param("operation")
    assert not operation.has_value, "the form must not preselect an operation"
    assert operation.schema["enum"] == ["cut_over", "rollback", "finish"]
    assert "Required" in operation.description


def test_flags_sit_in_the_section_of_their_operation(dagbag):
    params = dagbag.dags["dynamo2mongo__sample_orders__operations"].params
    assert params.get_param("resume_forward").schema["section"] == "rollback only"
    for name in ("strip_metadata", "disable_stream"):
        assert params.get_param(name).schema["section"] == "finish only"
        assert params[name] is False
    confirm = params.get_param("confirm")
    assert confirm.value is None and "null" in confirm.schema["type"]
    assert "`sample_orders`" in confirm.description


def test_confirmation_refuses_anything_but_the_table_name():
    from dynamo2mongo_airflow.operations import confirmation_refusal

    assert confirmation_refusal("cut_over", "sample_orders", "sample_orders") is None
    assert confirmation_refusal("rollback", " sample_orders ", "sample_orders") is None
    assert "left empty" in confirmation_refusal("cut_over", "", "sample_orders")
    assert "got 'orders'" in confirmation_refusal("rollback", "orders", "sample_orders")
    assert confirmation_refusal("finish", "", "sample_orders") is None


def test_task_groups_keep_the_task_ids(dagbag):
    dag = dagbag.dags["dynamo2mongo__sample_orders"]
    assert set(dag.task_ids) == TABLE_TASKS
    groups = {task.task_id: task.task_group.group_id for task in dag.tasks}
    assert groups["export"] == groups["reconcile"] == "full_load"
    assert groups["wait_forward_lag"] == "sync" and groups["verify"] == "indexes_and_verification"
    assert groups["load_file.convert"] == "load_file"
    assert "**full_load**" in dag.doc_md and "DESIGN" not in dag.doc_md
