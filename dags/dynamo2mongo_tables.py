"""Per table of the table configuration (config/tables.yaml or $D2M_CONFIG): its migration DAG and its
operations DAG (cut-over, rollback, finish). The configuration's plan decides what starts each
migration DAG (its schedule, or the previous wave's milestone assets); its pools bound how many
exports and file loads run at once across all tables."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import (DAG, Asset, AsyncCallback, DeadlineAlert, DeadlineReference, Param, TaskGroup, chain, task,
                         task_group)

from dynamo2mongo.config import ConfigError, MonitorConfig, PlanConfig, PoolsConfig, TableConfig, load_isolated, run_params
from dynamo2mongo.operations.plan import EXPORT_POOL, IMPORT_POOL, milestone_uri, trigger_description
from dynamo2mongo.state import Phase
from dynamo2mongo_airflow.base import OnCallRetryPolicy
from dynamo2mongo_airflow.operators import (
    ConvertFileOperator,
    EnableStreamOperator,
    ExportTableOperator,
    ImportFileOperator,
    ListExportFilesOperator,
    PreflightOperator,
    ReconcileOperator,
    StreamActiveSensor,
)
from dynamo2mongo_airflow.forward_lambda import DeployForwardLambdaOperator
from dynamo2mongo_airflow.indexes import CreateIndexesOperator
from dynamo2mongo_airflow.notify import failure_callbacks
from dynamo2mongo_airflow.operations import MigrationOperationOperator
from dynamo2mongo_airflow.plan import RunGateOperator, full_load_at_risk
from dynamo2mongo_airflow.dms import DeployDmsBackwardOperator, DmsBackwardRunningSensor, StartDmsBackwardOperator
from dynamo2mongo_airflow.sync import ForwardLagSensor, RelayRunningSensor
from dynamo2mongo_airflow.verify import VerifyOperator

DOC = """
### DynamoDB `{source}` → MongoDB `{database}.{collection}`

Starts: {trigger}. **gate** skips a run that a schedule tick or an upstream milestone starts once the
full load is done; a manual run redoes the full load, except after a cut-over.

**prepare**
- **gate**: may this run do the full load?
- **preflight**: table, PITR, stream, S3 and MongoDB checks; lists each problem with its fix
- **enable_stream**, **wait_stream_active**: a NEW_AND_OLD_IMAGES stream, so nothing after the export is missed

**full_load**
- **export**: point-in-time export ({format}), deferrable, one per DAG run (a retry resumes it)
- **list_export_files**: the export's manifest
- **load_file.convert** / **load_file.import**, one per data file: to canonical Extended JSON, then
  idempotent bulk upserts; the task log shows counts, rate and ETA
- **reconcile**: imported counts against the manifest; updates `{full_load_asset}`

**sync**
- **forward_sync** ({forward}): {forward_how}
- **wait_forward_lag**: lag under the threshold for {checks} consecutive checks; fails long before unapplied
  records reach the stream's 24 h retention; updates `{caught_up_asset}`
- backward sync ({backward}): {backward_how}

**indexes_and_verification**
- **create_indexes**: primary key, one per LSI/GSI (partial where sparse, ESR order where configured)
- **verify**: both stores compared by content hash; fails above the tolerance

**On call**
- every task is safe to clear and retry
- malformed records go to `{meta}.quarantine`; *accept_quarantined* loads the rest of a file anyway
- state: `{meta}.migrations`, document `_id: "{name}"`
- {deadline}
"""


def milestone_asset(table: str, milestone: str) -> Asset:
    return Asset(milestone_uri(table, milestone), group="dynamo2mongo")


def _schedule(table: TableConfig, plan: PlanConfig) -> str | list[Asset] | None:
    waits = plan.waits_for(table.name)
    if waits is None:
        return table.schedule
    _, previous_tables, milestone = waits
    return [milestone_asset(name, milestone) for name in previous_tables]


def _deadline(table: TableConfig) -> DeadlineAlert | None:
    """Alert while the run can still be rescued: the stream keeps changes for 24 h only."""
    if table.on_call.full_load_deadline_hours is None:
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=dt.timedelta(hours=table.on_call.full_load_deadline_hours),
        callback=AsyncCallback(full_load_at_risk, kwargs={"config": table.as_json()}),
        name="full_load_at_risk",
    )


def build_dag(table: TableConfig, plan: PlanConfig = PlanConfig(), pools: PoolsConfig | None = None,
              monitor: MonitorConfig = MonitorConfig()) -> DAG:
    on_call = table.on_call
    # Without configured pools the tasks stay in default_pool: a pool that was never created would
    # leave them queued forever.
    export_pool = {"pool": EXPORT_POOL} if pools else {}
    import_pool = {"pool": IMPORT_POOL} if pools else {}
    with DAG(
        dag_id=table.dag_id,
        description=f"Migrate DynamoDB {table.source_table} to MongoDB {table.database}.{table.collection}",
        doc_md=DOC.format(
            source=table.source_table,
            database=table.database,
            collection=table.collection,
            format=table.export.format,
            meta=table.metadata_database,
            name=table.name,
            trigger=trigger_description(plan, table),
            full_load_asset=milestone_uri(table.name, Phase.FULL_LOAD_DONE),
            caught_up_asset=milestone_uri(table.name, Phase.FORWARD_CAUGHT_UP),
            deadline=(
                f"If forward sync has not caught up {on_call.full_load_deadline_hours} h after the run was queued, "
                f"the deadline alert logs an error in the triggerer and records it in the migration state."
                if on_call.full_load_deadline_hours is not None
                else "No full-load deadline alert (`on_call.full_load_deadline_hours` is null)."
            ),
            forward=table.sync.forward,
            forward_how=(
                f"waits for the heartbeat of `dynamo2mongo relay forward --table {table.name}`"
                if table.sync.forward == "relay"
                else f"deploys Lambda `{table.lambda_function_name}` and its event source mapping"
            ),
            checks=table.sync.lag_consecutive_checks,
            backward=table.sync.backward,
            backward_how=(
                f"waits for the heartbeat of `dynamo2mongo relay backward --table {table.name}`"
                if table.sync.backward == "relay"
                else "deploys and starts a CDC-only AWS DMS task; see the README for its limits"
            ),
        ),
        schedule=_schedule(table, plan),
        # A later wave's DAG must be active when the previous wave's milestone arrives: Airflow drops
        # asset events for paused DAGs. It only runs on that event, so starting unpaused is safe.
        is_paused_upon_creation=False if plan.waits_for(table.name) else None,
        start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
        catchup=False,
        max_active_runs=1,
        tags=["dynamo2mongo", f"table:{table.name}", *table.tags],
        deadline=_deadline(table),
        default_args={
            "owner": table.owner,
            "retries": on_call.retries,
            "retry_delay": dt.timedelta(seconds=on_call.retry_delay_seconds),
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": dt.timedelta(seconds=on_call.max_retry_delay_seconds),
            "retry_policy": OnCallRetryPolicy(),
            "execution_timeout": dt.timedelta(hours=6),
            "on_failure_callback": failure_callbacks(monitor, table.name),
        },
        params={
            **{p.name: Param(p.default, description=p.description, **p.schema) for p in run_params(table)},
            "accept_quarantined": Param(
                False,
                type="boolean",
                description="Import the good records of a file that also has malformed ones (those stay in "
                "quarantine and are counted by reconcile). Leave off unless the quarantine was reviewed.",
            ),
        },
    ) as dag:
        common = {"table": table}
        # Groups for the graph view only: prefix_group_id=False keeps every task id (and so what
        # on-call clears, and every xcom_pull) as it was.
        with TaskGroup("prepare", prefix_group_id=False, tooltip="gate, preflight, the stream"):
            run_gate = RunGateOperator(task_id="gate", execution_timeout=dt.timedelta(minutes=10), **common)
            preflight = PreflightOperator(task_id="preflight", execution_timeout=dt.timedelta(minutes=10), **common)
            stream = EnableStreamOperator(task_id="enable_stream", execution_timeout=dt.timedelta(minutes=10),
                                          **common)
            stream_active = StreamActiveSensor(
                task_id="wait_stream_active",
                stream_arn="{{ ti.xcom_pull(task_ids='enable_stream')['stream_arn'] }}",
                execution_timeout=dt.timedelta(minutes=20),
                **common,
            )
        with TaskGroup("full_load", prefix_group_id=False, tooltip="export, convert and import per file, reconcile"):
            export = ExportTableOperator(
                task_id="export",
                # Deferred time counts: the export may take export.max_wait_seconds in AWS.
                execution_timeout=dt.timedelta(seconds=table.export.max_wait_seconds + 30 * 60),
                **export_pool,
                **common,
            )
            files = ListExportFilesOperator(
                task_id="list_export_files", export=export.output, execution_timeout=dt.timedelta(minutes=10), **common
            )

            @task_group(group_id="load_file")
            def load_file(data_file):
                converted = ConvertFileOperator(
                    task_id="convert",
                    data_file=data_file,
                    map_index_template="{{ data_file_label }}",
                    **import_pool,
                    **common,
                )
                ImportFileOperator(
                    task_id="import",
                    data_file=converted.output,
                    map_index_template="{{ data_file_label }}",
                    **import_pool,
                    **common,
                )

            loads = load_file.expand(data_file=files.output)
            reconcile = ReconcileOperator(
                task_id="reconcile",
                export=export.output,
                data_files=files.output,
                # An empty table exports no data file: the mapped group is skipped and reconcile still runs.
                trigger_rule="none_failed",
                execution_timeout=dt.timedelta(minutes=30),
                outlets=[milestone_asset(table.name, Phase.FULL_LOAD_DONE)],
                **common,
            )
        with TaskGroup("sync", prefix_group_id=False, tooltip="forward sync, the lag sensor, backward sync"):
            if table.sync.forward == "relay":
                forward = RelayRunningSensor(task_id="forward_sync", direction="forward", **common)
            else:
                forward = DeployForwardLambdaOperator(
                    task_id="forward_sync", execution_timeout=dt.timedelta(minutes=30), **common
                )
            lag = ForwardLagSensor(
                task_id="wait_forward_lag",
                execution_timeout=dt.timedelta(hours=table.sync.retention_alarm_hours + 1),
                outlets=[milestone_asset(table.name, Phase.FORWARD_CAUGHT_UP)],
                **common,
            )
            if table.sync.backward == "relay":
                backward = [RelayRunningSensor(task_id="backward_sync", direction="backward", **common)]
            else:
                deploy = DeployDmsBackwardOperator(task_id="deploy_backward", **common)
                start = StartDmsBackwardOperator(task_id="start_backward", **common)
                running = DmsBackwardRunningSensor(
                    task_id="wait_backward_running",
                    replication_task_arn="{{ ti.xcom_pull(task_ids='start_backward')['task_arn'] }}",
                    aws_conn_id=table.aws_conn_id,
                    region_name=table.region,
                    waiter_delay=table.dms.poll_seconds,
                    waiter_max_attempts=max(1, table.dms.max_wait_seconds // table.dms.poll_seconds),
                )
                backward = [deploy, start, running]
        with TaskGroup("indexes_and_verification", prefix_group_id=False, tooltip="indexes, then both stores compared"):
            # Index builds can take hours on a large collection: they run beside forward sync.
            indexes = CreateIndexesOperator(task_id="create_indexes", execution_timeout=dt.timedelta(hours=12),
                                            **common)
            verify = _verify_task(table)
        chain(run_gate, preflight, stream, stream_active, export, files, loads, reconcile, forward, lag, *backward,
              verify)
        reconcile >> indexes >> verify
    return dag


OPERATIONS_DOC = """
### Operations on `{source}` ↔ `{database}.{collection}`

Trigger with **operation** (nothing is preselected); cut_over and rollback also need the table's
name `{name}` typed in **confirm**.

- **cut_over**: stop the old application's writes to DynamoDB first. Waits until forward sync applied
  every DynamoDB write made before the run began (refuses if DynamoDB is still written), then stops
  forward sync. MongoDB is the writer; backward sync keeps DynamoDB current, so a rollback loses nothing.
- **rollback**: stop the new application's writes to MongoDB first. Waits until backward sync applied
  every MongoDB write, then stops it and (with *resume_forward*) resumes forward sync. DynamoDB is the writer.
- **finish**: after a cut-over, stops both directions; optionally removes `_ddb` metadata and disables the
  stream (only if this migration enabled it).

Each refuses, with the reason, in a state where it would lose data; each is safe to clear and rerun.
"""


def _verify_task(table: TableConfig) -> VerifyOperator:
    return VerifyOperator(
        task_id="verify",
        table=table,
        sample_fraction=table.verify.sample_fraction,
        tolerance=table.verify.tolerance,
        examples=table.verify.examples,
        execution_timeout=dt.timedelta(hours=6),
    )


def operation_params(table: TableConfig) -> dict[str, Param]:
    """The operations form: no operation preselected, a typed confirmation for the two that switch the
    writer, and each flag in the section of the one operation it applies to (the 3.3 form cannot hide
    a field by another field's value; the operator ignores a flag of another operation)."""
    return {
        "operation": Param(
            type="string",
            enum=["cut_over", "rollback", "finish"],
            title="Operation",
            description="Required, nothing is preselected. cut_over: MongoDB becomes the writer (stop the old "
            "application's DynamoDB writes first); rollback: DynamoDB is the writer again (stop the new "
            "application's MongoDB writes first); finish: after a cut-over, stop both syncs for good.",
        ),
        "confirm": Param(
            None,
            type=["null", "string"],
            title="Confirm with the table's name",
            description=f"cut_over and rollback only: type `{table.name}` to confirm; any other value refuses.",
        ),
        "resume_forward": Param(
            True, type="boolean", title="Resume forward sync", section="rollback only",
            description="Applies to rollback only: resume forward sync, so MongoDB stays current after the rollback.",
        ),
        "strip_metadata": Param(
            False, type="boolean", title="Remove _ddb", section="finish only",
            description="Applies to finish only: remove the _ddb field (type hints, sync marks) from every document.",
        ),
        "disable_stream": Param(
            False, type="boolean", title="Disable the stream", section="finish only",
            description="Applies to finish only: disable the DynamoDB stream, if this migration enabled it.",
        ),
    }


def build_operations_dag(table: TableConfig, monitor: MonitorConfig = MonitorConfig()) -> DAG:
    with DAG(
        dag_id=f"{table.dag_id}__operations",
        description=f"Cut-over, rollback and finish for {table.source_table} <-> {table.database}.{table.collection}",
        doc_md=OPERATIONS_DOC.format(source=table.source_table, database=table.database, collection=table.collection,
                                     name=table.name),
        schedule=None,
        start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
        catchup=False,
        max_active_runs=1,
        tags=["dynamo2mongo", "operations", f"table:{table.name}", *table.tags],
        default_args={
            "owner": table.owner,
            "retries": 1,
            "retry_delay": dt.timedelta(seconds=30),
            "retry_policy": OnCallRetryPolicy(),
            "execution_timeout": dt.timedelta(hours=1),
            "on_failure_callback": failure_callbacks(monitor, table.name),
        },
        params=operation_params(table),
    ) as dag:
        operation = MigrationOperationOperator(
            task_id="operation",
            table=table,
            operation="{{ params.operation }}",
            resume_forward="{{ params.resume_forward }}",
            strip_metadata="{{ params.strip_metadata }}",
            disable_stream="{{ params.disable_stream }}",
            confirm="{{ params.confirm or '' }}",
        )
        operation >> _verify_task(table)
    return dag


def build_rejected_dag(name: str, error: ConfigError) -> DAG:
    """The DAG of a table whose configuration is wrong: it shows the error (in its docs, and as the
    failure of its one task) while every other table's DAGs load as usual."""
    with DAG(
        dag_id=f"dynamo2mongo__{name}",
        schedule=None,
        catchup=False,
        tags=["dynamo2mongo", "configuration error"],
        max_active_runs=1,
        # Retrying cannot mend a configuration.
        default_args={"owner": "dynamo2mongo", "retries": 0, "execution_timeout": dt.timedelta(minutes=1)},
        doc_md=f"### The configuration of table `{name}` is wrong\n\n```\n{error}\n```\n\nFix the table "
               f"configuration; this DAG becomes the table's migration DAG once it validates.",
    ) as dag:
        @task(task_id="configuration_error")
        def configuration_error() -> None:
            raise ConfigError(str(error))

        configuration_error()
    return dag


_configuration, _rejected = load_isolated()
for _name, _error in _rejected.items():
    globals()[f"dynamo2mongo__{_name}"] = build_rejected_dag(_name, _error)
for _table in _configuration.tables:
    globals()[_table.dag_id] = build_dag(_table, _configuration.plan, _configuration.pools, _configuration.monitor)
    globals()[f"{_table.dag_id}__operations"] = build_operations_dag(_table, _configuration.monitor)
