"""Rendered templates (kept by Airflow per task try and shown in the UI) hold no credential: no templated
field reads a connection or a variable, and rendering every task's fields with the connections set
yields none of their secrets."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest
from jinja2 import Environment, meta

DAGS = Path(__file__).resolve().parents[2] / "dags"
SECRET = "template-test-secret-4b1d"


@pytest.fixture(scope="module")
def dags():
    patch = pytest.MonkeyPatch()
    patch.setenv("AIRFLOW_CONN_MONGO_DEFAULT", json.dumps(
        {"conn_type": "mongo", "host": "db.example", "login": "app", "password": SECRET}))
    patch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(
        {"conn_type": "aws", "login": "AKIAEXAMPLE", "password": SECRET}))
    from airflow.dag_processing.dagbag import DagBag

    yield DagBag(dag_folder=str(DAGS)).dags
    patch.undo()


def _templates(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _templates(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _templates(item)


def test_no_templated_field_reads_a_connection_or_a_variable(dags):
    env = Environment()
    for dag in dags.values():
        for task in dag.tasks:
            for field in task.template_fields:
                for text in _templates(getattr(task, field, None)):
                    names = meta.find_undeclared_variables(env.parse(text))
                    assert not names & {"conn", "var", "macros"}, (dag.dag_id, task.task_id, field, text)


def test_rendered_fields_hold_no_secret(dags):
    for dag in dags.values():
        for task in dag.tasks:
            # XCom values are the tasks' own results, searched by tests/integration/test_no_secrets.py.
            ti = SimpleNamespace(xcom_pull=lambda **_: defaultdict(lambda: "xcom-value"))
            context = {"params": {k: v.value for k, v in dag.params.items()}, "run_id": "manual__1",
                       "dag": dag, "task": task, "ti": ti}
            jinja = dag.get_template_env()
            for field in task.template_fields:
                for text in _templates(getattr(task, field, None)):
                    rendered = jinja.from_string(text).render(**context)
                    assert SECRET not in rendered, (dag.dag_id, task.task_id, field)
