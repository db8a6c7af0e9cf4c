"""Per table of the table configuration (config/tables.yaml or $D2M_CONFIG): its migration DAG and its
operations DAG (cut-over, rollback, finish)."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param, chain, task_group

from dynamo2mongo.config import EXPORT_FORMATS, TableConfig, load_config
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
from dynamo2mongo_airflow.operations import MigrationOperationOperator
from dynamo2mongo_airflow.dms import DeployDmsBackwardOperator, DmsBackwardRunningSensor, StartDmsBackwardOperator
from dynamo2mongo_airflow.sync import ForwardLagSensor, RelayRunningSensor
from dynamo2mongo_airflow.verify import VerifyOperator

DOC = """
### DynamoDB `{source}` → MongoDB `{database}.{collection}`

Full load of a live table (DESIGN §2): **preflight** (table, PITR, stream, S3, MongoDB checks) →
**enable_stream** (NEW_AND_OLD_IMAGES, so nothing after the export time is missed) →
**wait_stream_active** → **export** (point-in-time, {format}, deferrable; one export per DAG run) →
**list_export_files** (manifest-files.json) → **load_file** mapped per data file: **convert** (to
canonical Extended JSON next to the export) then **import** (idempotent bulk upserts) →
**reconcile** (imported counts against the manifest) → **forward_sync** ({forward}: {forward_how}) →
**wait_forward_lag** (deferrable: lag under the threshold for {checks} consecutive checks; fails long
before unapplied records reach the stream's 24 h retention) → backward sync ({backward}: {backward_how})
→ **create_indexes** (primary key, one per LSI/GSI, partial where sparse, ESR order where configured;
checked against the plan) → **verify** (both sides compared by content hash; fails above the tolerance).

Every task is safe to clear and retry. Malformed records are kept in the `quarantine` collection of
the `{meta}` database; set *accept_quarantined* to load the rest of a file anyway.
State lives in `{meta}.migrations` (document `_id: "{name}"`).
"""


def build_dag(table: TableConfig) -> DAG:
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
        schedule=table.schedule,
        start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
        catchup=False,
        max_active_runs=1,
        tags=["dynamo2mongo", f"table:{table.name}", *table.tags],
        default_args={
            "owner": table.owner,
            "retries": 3,
            "retry_delay": dt.timedelta(seconds=30),
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": dt.timedelta(minutes=10),
            "execution_timeout": dt.timedelta(hours=6),
        },
        params={
            "export_format": Param(
                table.export.format,
                enum=list(EXPORT_FORMATS),
                description="Format of the point-in-time export: ION keeps every DynamoDB type; "
                "DYNAMODB_JSON is the alternative.",
            ),
            "import_batch_size": Param(
                table.imports.batch_size,
                type="integer",
                minimum=1,
                maximum=100_000,
                description="Documents per unordered bulk write during the import.",
            ),
            "lag_threshold_seconds": Param(
                table.sync.lag_threshold_seconds,
                type="integer",
                minimum=1,
                description="Forward-sync lag under which the table counts as caught up.",
            ),
            "accept_quarantined": Param(
                False,
                type="boolean",
                description="Import the good records of a file that also has malformed ones (those stay in "
                "quarantine and are counted by reconcile). Leave off unless the quarantine was reviewed.",
            ),
        },
    ) as dag:
        common = {"table": table.name}
        preflight = PreflightOperator(task_id="preflight", execution_timeout=dt.timedelta(minutes=10), **common)
        stream = EnableStreamOperator(task_id="enable_stream", **common)
        stream_active = StreamActiveSensor(
            task_id="wait_stream_active",
            stream_arn="{{ ti.xcom_pull(task_ids='enable_stream')['stream_arn'] }}",
            **common,
        )
        export = ExportTableOperator(task_id="export", **common)
        files = ListExportFilesOperator(task_id="list_export_files", export=export.output, **common)

        @task_group(group_id="load_file")
        def load_file(data_file):
            converted = ConvertFileOperator(
                task_id="convert", data_file=data_file, map_index_template="{{ data_file_label }}", **common
            )
            ImportFileOperator(
                task_id="import", converted=converted.output, map_index_template="{{ data_file_label }}", **common
            )

        loads = load_file.expand(data_file=files.output)
        reconcile = ReconcileOperator(
            task_id="reconcile",
            export=export.output,
            data_files=files.output,
            # An empty table exports no data file: the mapped group is skipped and reconcile still runs.
            trigger_rule="none_failed",
            **common,
        )
        if table.sync.forward == "relay":
            forward = RelayRunningSensor(task_id="forward_sync", direction="forward", **common)
        else:
            forward = DeployForwardLambdaOperator(task_id="forward_sync", **common)
        lag = ForwardLagSensor(
            task_id="wait_forward_lag",
            execution_timeout=dt.timedelta(hours=table.sync.retention_alarm_hours + 1),
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
        indexes = CreateIndexesOperator(task_id="create_indexes", **common)
        verify = _verify_task(table)
        chain(preflight, stream, stream_active, export, files, loads, reconcile, forward, lag, *backward, indexes, verify)
    return dag


OPERATIONS_DOC = """
### Operations on `{source}` ↔ `{database}.{collection}`

Trigger with **operation**:
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
        table=table.name,
        sample_fraction=table.verify.sample_fraction,
        tolerance=table.verify.tolerance,
        examples=table.verify.examples,
        execution_timeout=dt.timedelta(hours=6),
    )


def build_operations_dag(table: TableConfig) -> DAG:
    with DAG(
        dag_id=f"{table.dag_id}__operations",
        description=f"Cut-over, rollback and finish for {table.source_table} <-> {table.database}.{table.collection}",
        doc_md=OPERATIONS_DOC.format(source=table.source_table, database=table.database, collection=table.collection),
        schedule=None,
        start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
        catchup=False,
        max_active_runs=1,
        tags=["dynamo2mongo", "operations", f"table:{table.name}", *table.tags],
        default_args={
            "owner": table.owner,
            "retries": 1,
            "retry_delay": dt.timedelta(seconds=30),
            "execution_timeout": dt.timedelta(hours=1),
        },
        params={
            "operation": Param(
                "cut_over",
                enum=["cut_over", "rollback", "finish"],
                description="cut_over: MongoDB becomes the writer; rollback: DynamoDB is the writer again; "
                "finish: stop both syncs for good. Stop the current writer's application first.",
            ),
            "resume_forward": Param(
                True, type="boolean", description="On rollback: resume forward sync, so MongoDB stays current."
            ),
            "strip_metadata": Param(
                False, type="boolean", description="On finish: remove the _ddb field (type hints, sync marks)."
            ),
            "disable_stream": Param(
                False, type="boolean", description="On finish: disable the stream, if this migration enabled it."
            ),
        },
    ) as dag:
        operation = MigrationOperationOperator(
            task_id="operation",
            table=table.name,
            operation="{{ params.operation }}",
            resume_forward="{{ params.resume_forward }}",
            strip_metadata="{{ params.strip_metadata }}",
            disable_stream="{{ params.disable_stream }}",
        )
        operation >> _verify_task(table)
    return dag


for _table in load_config():
    globals()[_table.dag_id] = build_dag(_table)
    globals()[f"{_table.dag_id}__operations"] = build_operations_dag(_table)
