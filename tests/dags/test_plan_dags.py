"""The DAGs of a three-table plan (via D2M_CONFIG): assets, pools, retries, timeouts, deadline and the run gate."""

import datetime as dt
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from botocore.exceptions import ClientError
from pymongo.errors import AutoReconnect, ConfigurationError, OperationFailure

from dynamo2mongo.config import parse_document
from dynamo2mongo.state import Migration

DAGS = Path(__file__).resolve().parents[2] / "dags"

PLAN_CONFIG = {
    "defaults": {"database": "shop", "export": {"s3_bucket": "exports", "max_wait_seconds": 7200}},
    "pools": {"exports": 1, "imports": 3},
    "plan": {
        "waves": [["orders"], ["users"], {"tables": ["payments"], "start_after": "forward_caught_up"}],
    },
    "tables": [
        {"name": "orders", "source_table": "Orders", "collection": "orders", "schedule": "0 2 * * *",
         "on_call": {"retries": 5, "retry_delay_seconds": 10, "max_retry_delay_seconds": 300}},
        {"name": "users", "source_table": "Users", "collection": "users", "sync": {"forward": "lambda"}},
        {"name": "payments", "source_table": "Payments", "collection": "payments",
         "sync": {"backward": "dms", "retention_alarm_hours": 20}, "on_call": {"full_load_deadline_hours": 6}},
    ],
}


def _dagbag(tmp_path_factory, document):
    from airflow.dag_processing.dagbag import DagBag

    path = tmp_path_factory.mktemp("plan") / "tables.yaml"
    path.write_text(yaml.safe_dump(document))
    patch = pytest.MonkeyPatch()
    patch.setenv("D2M_CONFIG", str(path))

    def no_network(*args, **kwargs):
        raise AssertionError("DAG files must not open network connections at parse time")

    patch.setattr(socket.socket, "connect", no_network)
    try:
        bag = DagBag(dag_folder=str(DAGS))
    finally:
        patch.undo()
    assert bag.import_errors == {}
    return bag


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    return _dagbag(tmp_path_factory, PLAN_CONFIG)


def _uris(assets):
    return [a.uri for a in assets]


def test_one_migration_and_one_operations_dag_per_table(dagbag):
    for name in ("orders", "users", "payments"):
        assert f"dynamo2mongo__{name}" in dagbag.dags
        assert f"dynamo2mongo__{name}__operations" in dagbag.dags


def test_waves_are_wired_by_milestone_assets(dagbag):
    orders, users, payments = (dagbag.dags[f"dynamo2mongo__{n}"] for n in ("orders", "users", "payments"))
    assert orders.schedule == "0 2 * * *"
    assert _uris(users.schedule) == ["dynamo2mongo://orders/full_load_done"]
    assert _uris(payments.schedule) == ["dynamo2mongo://users/forward_caught_up"]
    for dag in (orders, users, payments):
        name = dag.dag_id.split("__")[1]
        assert _uris(dag.get_task("reconcile").outlets) == [f"dynamo2mongo://{name}/full_load_done"]
        assert _uris(dag.get_task("wait_forward_lag").outlets) == [f"dynamo2mongo://{name}/forward_caught_up"]
        assert [t.task_id for t in dag.tasks if t.outlets] == ["reconcile", "wait_forward_lag"]
        assert "Starts: " in dag.doc_md
    assert "after wave 1 (orders) reaches full_load_done" in users.doc_md
    # Airflow drops asset events for paused DAGs: later waves start unpaused, the first waits for a person.
    assert orders.is_paused_upon_creation is None
    assert users.is_paused_upon_creation is False
    assert payments.is_paused_upon_creation is False


def test_exports_and_file_loads_share_pools(dagbag):
    for name in ("orders", "users", "payments"):
        dag = dagbag.dags[f"dynamo2mongo__{name}"]
        pools = {t.task_id: t.pool for t in dag.tasks}
        assert pools.pop("export") == "dynamo2mongo_exports"
        assert pools.pop("load_file.convert") == "dynamo2mongo_imports"
        assert pools.pop("load_file.import") == "dynamo2mongo_imports"
        assert set(pools.values()) == {"default_pool"}


def test_without_pools_or_deadline(tmp_path_factory):
    document = {**PLAN_CONFIG, "defaults": {**PLAN_CONFIG["defaults"], "on_call": {"full_load_deadline_hours": None}}}
    del document["pools"]
    bag = _dagbag(tmp_path_factory, document)
    assert {t.pool for dag in bag.dags.values() for t in dag.tasks} == {"default_pool"}
    # payments sets its own deadline, merged over the defaults.
    assert [dag.dag_id for dag in bag.dags.values() if dag.deadline] == ["dynamo2mongo__payments"]
    assert "No full-load deadline alert" in bag.dags["dynamo2mongo__orders"].doc_md


def test_every_task_has_a_timeout_and_the_configured_retries(dagbag):
    from dynamo2mongo_airflow.base import OnCallRetryPolicy

    configuration = parse_document(PLAN_CONFIG)
    for table in configuration.tables:
        dag = dagbag.dags[table.dag_id]
        for task in dag.tasks:
            assert task.execution_timeout is not None and task.execution_timeout > dt.timedelta(0), task.task_id
            assert task.retries == table.on_call.retries, task.task_id
            assert task.retry_delay == dt.timedelta(seconds=table.on_call.retry_delay_seconds), task.task_id
            assert task.retry_exponential_backoff, task.task_id
            assert task.max_retry_delay == dt.timedelta(seconds=table.on_call.max_retry_delay_seconds), task.task_id
            assert isinstance(task.retry_policy, OnCallRetryPolicy), task.task_id
        # The export waits deferred for up to export.max_wait_seconds; the lag sensor until the retention alarm.
        assert dag.get_task("export").execution_timeout > dt.timedelta(seconds=table.export.max_wait_seconds)
        assert dag.get_task("wait_forward_lag").execution_timeout > dt.timedelta(hours=table.sync.retention_alarm_hours)
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            assert task.execution_timeout is not None, (dag.dag_id, task.task_id)
            assert isinstance(task.retry_policy, OnCallRetryPolicy), (dag.dag_id, task.task_id)


def test_full_load_deadline_alert(dagbag):
    from airflow.sdk import AsyncCallback, DeadlineReference

    configuration = parse_document(PLAN_CONFIG)
    for name, hours in (("orders", 12), ("payments", 6)):
        (alert,) = dagbag.dags[f"dynamo2mongo__{name}"].deadline
        assert alert.reference == DeadlineReference.DAGRUN_QUEUED_AT
        assert alert.interval == dt.timedelta(hours=hours)
        assert isinstance(alert.callback, AsyncCallback)
        assert alert.callback.path == "dynamo2mongo_airflow.plan.full_load_at_risk"
        assert alert.callback.kwargs == {"config": configuration.table(name).as_json()}


def test_the_gate_comes_before_everything(dagbag):
    for name in ("orders", "users", "payments"):
        dag = dagbag.dags[f"dynamo2mongo__{name}"]
        assert [t.task_id for t in dag.roots] == ["gate"]
        gate = dag.get_task("gate")
        assert {t.task_id for t in gate.get_flat_relatives(upstream=False)} == set(dag.task_ids) - {"gate"}


class _State:
    def __init__(self, migration):
        self._migration = migration

    def migration(self):
        return Migration(self._migration)


class _TaskInstance:
    map_index = -1

    def __init__(self):
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def _run_gate(dagbag, migration, run_type, run_id="r2"):
    dag = dagbag.dags["dynamo2mongo__users"]
    gate = dag.get_task("gate")
    gate.state = lambda config: _State(migration)
    config = parse_document(PLAN_CONFIG).table("users")
    context = {"dag_run": SimpleNamespace(run_type=run_type), "run_id": run_id, "ti": _TaskInstance()}
    return dag, gate.run(config, context)


def test_gate_skips_the_whole_run_when_an_upstream_milestone_comes_again(dagbag):
    from airflow.sdk.exceptions import DownstreamTasksSkipped

    with pytest.raises(DownstreamTasksSkipped) as skipped:
        _run_gate(dagbag, {"phase": "forward_caught_up", "last_run_id": "r1"}, "asset_triggered")
    dag = dagbag.dags["dynamo2mongo__users"]
    assert set(skipped.value.tasks) == set(dag.task_ids) - {"gate"}


def test_gate_lets_a_new_or_resumed_run_through_and_refuses_a_cut_over_table(dagbag):
    from airflow.sdk.exceptions import AirflowFailException

    assert _run_gate(dagbag, {}, "asset_triggered")[1]["action"] == "run"
    assert _run_gate(dagbag, {"phase": "full_load_done", "last_run_id": "r2"}, "asset_triggered")[1]["action"] == "run"
    with pytest.raises(AirflowFailException, match="Roll back first"):
        _run_gate(dagbag, {"phase": "cut_over", "writer": "mongodb", "last_run_id": "r1"}, "manual")


def _client_error(code):
    return ClientError({"Error": {"Code": code, "Message": "no"}}, "ExportTableToPointInTime")


def test_errors_that_cannot_heal_fail_at_once_and_the_rest_retry():
    from airflow.sdk import RetryAction
    from airflow.sdk.exceptions import AirflowFailException

    from dynamo2mongo.engines.dms import DmsError, DmsTimeout
    from dynamo2mongo.engines.aws_lambda import LambdaDeployError
    from dynamo2mongo.operations.cutover import OperationRefused
    from dynamo2mongo.errors import cannot_heal
    from dynamo2mongo_airflow.base import OnCallRetryPolicy, permanent_errors_fail_fast

    permanent = [DmsError("t"), LambdaDeployError("t"), OperationRefused("t"), _client_error("AccessDeniedException"),
                 _client_error("ValidationException"), ConfigurationError("bad uri"),
                 OperationFailure("not authorized", code=13)]
    transient = [DmsTimeout("t"), _client_error("ThrottlingException"), _client_error("LimitExceededException"),
                 AutoReconnect("primary stepped down"), OperationFailure("interrupted", code=11602), TimeoutError()]
    policy = OnCallRetryPolicy()
    for error in permanent:
        assert cannot_heal(error), error
        assert policy.evaluate(error, 1, 4).action == RetryAction.FAIL, error
        with pytest.raises(AirflowFailException):
            with permanent_errors_fail_fast():
                raise error
    for error in transient:
        assert cannot_heal(error) is None, error
        assert policy.evaluate(error, 1, 4).action == RetryAction.DEFAULT, error
        with pytest.raises(type(error)):
            with permanent_errors_fail_fast():
                raise error


class _Exports:
    """DynamoDB's export API as a cleared run sees it: its export exists, maybe past the 8 h token window."""

    def __init__(self, status):
        self.status = status

    def describe_export(self, ExportArn):
        return {"ExportDescription": {
            "ExportArn": ExportArn, "ExportStatus": self.status, "ExportFormat": "ION", "S3Bucket": "exports",
            "S3Prefix": "dynamo2mongo", "ExportManifest": "dynamo2mongo/AWSDynamoDB/01/manifest-summary.json",
            "ItemCount": 5, "ExportTime": dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)}}

    def export_table_to_point_in_time(self, **request):
        raise AssertionError("a cleared run must not start a second export")


class _ExportState:
    def __init__(self, recorded):
        self.recorded = recorded
        self.phases = []

    def export_for_run(self, run_id):
        return self.recorded

    def migration(self):
        return Migration({"exports": {"run": self.recorded}, "source": {"size_bytes": 5 * 2**20}})

    def record_export(self, run_id, export):
        self.recorded = {**self.recorded, **export}

    def set_phase(self, phase, run_id=None):
        self.phases.append(phase)


@pytest.mark.parametrize("status", ["COMPLETED", "IN_PROGRESS"])
def test_a_cleared_export_task_resumes_the_export_its_run_recorded(dagbag, status):
    from airflow.sdk.exceptions import TaskDeferred

    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/export/01"
    export = dagbag.dags["dynamo2mongo__orders"].get_task("export")
    state = _ExportState({"export_arn": arn, "client_token": "t"})
    export.state = lambda config: state
    export.aws = lambda config, service: _Exports(status)
    config = parse_document(PLAN_CONFIG).table("orders")
    context = {"run_id": "manual__2025-01-01", "dag": dagbag.dags["dynamo2mongo__orders"]}
    if status == "COMPLETED":
        assert export.run(config, context)["export_arn"] == arn
        assert state.phases == ["exported"]
    else:
        with pytest.raises(TaskDeferred) as deferred:
            export.run(config, context)
        assert deferred.value.trigger.serialize()[1]["export_arn"] == arn
