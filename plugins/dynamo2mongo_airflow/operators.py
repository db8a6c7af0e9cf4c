"""Operators of the full-load phase. Each is idempotent: clearing and re-running it is always safe."""

from __future__ import annotations

import json
import posixpath
from typing import Any

from airflow.sdk import BaseSensorOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from dynamo2mongo.fullload import reconcile as reconciliation
from dynamo2mongo.config import TableConfig
from dynamo2mongo.fullload.convert import BadRecord, convert_file
from dynamo2mongo.fullload.export import manifest
from dynamo2mongo.fullload.export.request import (
    ExportInfo,
    client_token,
    completed_export,
    describe_export,
    ensure_pitr,
    export_estimate,
    start_export,
)
from dynamo2mongo.fullload.load import import_file
from dynamo2mongo.mapping.native import line_converter
from dynamo2mongo.prepare.preflight import run_preflight
from dynamo2mongo.prepare.stream import ensure_stream, stream_status
from dynamo2mongo.prepare.table import describe_table
from dynamo2mongo.state import Phase
from dynamo2mongo_airflow.base import TableOperator, permanent_errors_fail_fast, run_config
from dynamo2mongo_airflow.connections import Connections
from dynamo2mongo_airflow.triggers import DynamoDBClientHook, ExportCompletedTrigger


class PreflightOperator(TableOperator):
    """Describe the source table, check PITR, stream, S3 and MongoDB; fail listing every problem.

    Pushes the table facts (keys, indexes, size, item count, stream and PITR state, MongoDB topology).
    """

    def run(self, config: TableConfig, context: Context) -> dict[str, Any]:
        report = run_preflight(config, self.aws(config, "dynamodb"), self.aws(config, "s3"), self.mongo(config))
        self.state(config).update_migration(
            phase=Phase.PREFLIGHT_PASSED,
            last_run_id=context["run_id"],
            source=report.table,
            target={"database": config.database, "collection": config.collection},
        )
        self.log.info("preflight of %s passed: %s", config.name, json.dumps(report.table, default=str))
        return {"table": report.table, "mongo": report.mongo, "warnings": report.warnings}


class EnableStreamOperator(TableOperator):
    """Enable the table's NEW_AND_OLD_IMAGES stream before the export (UpdateTable), or accept it."""

    def run(self, config: TableConfig, context: Context) -> dict[str, Any]:
        result = ensure_stream(self.aws(config, "dynamodb"), config.source_table)
        state = self.state(config)
        previous = state.migration()
        # A retry finds the stream this task enabled a moment ago: remember who enabled it, since only
        # a stream we enabled may be disabled when the migration finishes.
        enabled_by_us = result.enabled_by_us or (
            previous.stream_arn == result.stream_arn and previous.stream_enabled_by_us
        )
        state.update_migration(stream={"arn": result.stream_arn, "enabled_by_us": enabled_by_us})
        self.log.info("stream of %s: %s (enabled by this migration: %s)", config.source_table, result.stream_arn, enabled_by_us)
        return {"stream_arn": result.stream_arn, "enabled_by_us": enabled_by_us}


class StreamActiveSensor(BaseSensorOperator):
    """Wait until the stream's status is ENABLED (DynamoDB Streams DescribeStream).

    Polls in the worker rather than deferring: DynamoDB enables a stream within seconds, less than a
    deferral's round trip through the triggerer, and Streams has no boto waiter to defer on.

    :param table: the table's configuration, as the DAG factory parsed it.
    :param stream_arn: the stream to watch (templated; usually the enable task's XCom).
    """

    template_fields = ("stream_arn",)

    def __init__(self, *, table: TableConfig, stream_arn: str, **kwargs: Any) -> None:
        kwargs.setdefault("poke_interval", 5)
        kwargs.setdefault("timeout", 15 * 60)
        super().__init__(**kwargs)
        self.table = table
        self.stream_arn = stream_arn

    def poke(self, context: Context) -> bool:
        config = run_config(self.table, context)
        status = stream_status(Connections(config).aws("dynamodbstreams"), self.stream_arn)
        self.log.info("stream %s is %s", self.stream_arn, status)
        if status in ("DISABLING", "DISABLED"):
            raise AirflowFailException(
                f"stream {self.stream_arn} of {config.source_table!r} is {status}: something disabled it; "
                f"clear the enable_stream task to enable it again"
            )
        return status == "ENABLED"


class ExportTableOperator(TableOperator):
    """Point-in-time export of the table to S3 (ION or DYNAMODB_JSON), waiting without a worker.

    A retried or cleared task, or a whole cleared run, resumes the export its run recorded in the
    migration state unless that export failed; the ClientToken, derived from the DAG run, also makes
    DynamoDB return the run's export, but only for 8 hours. Pushes the export ARN, export time and
    manifest key.

    :param deferrable: wait in the triggerer (default) rather than in a worker slot.
    """

    def __init__(self, *, deferrable: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable

    def run(self, config: TableConfig, context: Context) -> dict[str, Any]:
        dynamodb = self.aws(config, "dynamodb")
        recorded = self.state(config).export_for_run(context["run_id"]) or {}
        info = describe_export(dynamodb, recorded["export_arn"]) if recorded.get("export_arn") else None
        if info is None or info.status == "FAILED":
            info = self._start(config, context, dynamodb)
        else:
            self.log.info("resuming export %s of this run", info.arn)
        self.log.info("export %s of %s is %s", info.arn, config.source_table, info.status)
        if info.status != "COMPLETED":
            migration = self.state(config).migration()
            earlier = [e for e in migration.exports.values() if e.get("export_arn") != info.arn]
            # The size preflight read (DescribeTable, refreshed by DynamoDB about every six hours).
            estimate = export_estimate(earlier, migration.size_bytes, info.start_time)
            self.log.info("export %s: %s", info.arn, estimate)
            if self.deferrable:
                self.defer(
                    trigger=ExportCompletedTrigger(
                        export_arn=info.arn,
                        estimate=estimate,
                        waiter_delay=config.export.poll_seconds,
                        waiter_max_attempts=max(1, config.export.max_wait_seconds // config.export.poll_seconds),
                        aws_conn_id=config.aws_conn_id,
                        region_name=config.region,
                    ),
                    method_name="execute_complete",
                )
            self._wait_in_worker(config, info.arn)
        return self._finish(config, context, info.arn)

    def _start(self, config: TableConfig, context: Context, dynamodb: Any) -> ExportInfo:
        if ensure_pitr(dynamodb, config.source_table, config.export.enable_pitr):
            self.log.info("turned on point-in-time recovery for %s", config.source_table)
            self.state(config).update_migration(pitr_enabled_by_us=True)
        table = describe_table(dynamodb, config.source_table)
        token = client_token(context["dag"].dag_id, context["run_id"])
        info = start_export(
            dynamodb,
            table.arn,
            config.export.s3_bucket,
            config.export.s3_prefix,
            config.export.format,
            token,
        )
        self.state(config).record_export(context["run_id"], {**info.facts(), "client_token": token})
        return info

    @staticmethod
    def _wait_in_worker(config: TableConfig, export_arn: str) -> None:
        hook = DynamoDBClientHook(aws_conn_id=config.aws_conn_id, region_name=config.region)
        hook.get_waiter("export_table").wait(
            ExportArn=export_arn,
            WaiterConfig={
                "Delay": config.export.poll_seconds,
                "MaxAttempts": max(1, config.export.max_wait_seconds // config.export.poll_seconds),
            },
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        with permanent_errors_fail_fast(), self.closing_connections():
            config = self.table_config(context)
            if event.get("status") != "success":
                raise AirflowFailException(
                    f"waiting for export {event.get('export_arn')} failed: {event.get('message')}. "
                    f"Check the export in the DynamoDB console; clearing this task resumes the same export."
                )
            return self._finish(config, context, event["export_arn"])

    def _finish(self, config: TableConfig, context: Context, export_arn: str) -> dict[str, Any]:
        info = completed_export(self.aws(config, "dynamodb"), export_arn)
        facts = info.facts()
        self.state(config).record_export(context["run_id"], facts)
        self.state(config).set_phase(Phase.EXPORTED, context["run_id"])
        self.log.info("export %s completed: %s items at %s", info.arn, info.item_count, info.export_time)
        return facts


def _read_text(s3: Any, bucket: str, key: str) -> str:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")


class ListExportFilesOperator(TableOperator):
    """Read manifest-summary.json and manifest-files.json; push one entry per data file for mapping.

    :param export: the export task's XCom (templated).
    """

    template_fields = ("export",)

    def __init__(self, *, export: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.export = export

    def run(self, config: TableConfig, context: Context) -> list[dict[str, Any]]:
        s3 = self.aws(config, "s3")
        bucket = self.export["bucket"]
        summary = manifest.parse_summary(_read_text(s3, bucket, self.export["manifest_key"]))
        files = manifest.parse_files(_read_text(s3, bucket, summary.manifest_files_key))
        listed = [
            {
                "export_id": self.export["export_id"],
                "bucket": bucket,
                "data_key": f.data_key,
                "items": f.item_count,
                "etag": f.etag,
                "format": summary.output_format,
            }
            for f in files
        ]
        self.log.info(
            "export %s: %d data file(s), %s items (%s)",
            self.export["export_id"],
            len(listed),
            summary.item_count,
            summary.output_format,
        )
        return listed


class _DataFileOperator(TableOperator):
    """A task mapped over the export's data files, labelled by its file's name (``data_file_label``).

    :param data_file: the file's entry in the upstream task's XCom (mapped).
    """

    template_fields = ("data_file",)

    def __init__(self, *, data_file: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_file = data_file

    def run(self, config: TableConfig, context: Context) -> dict[str, Any]:
        context["data_file_label"] = posixpath.basename(self.data_file["data_key"])
        return self.run_file(config, context, self.data_file)

    def run_file(self, config: TableConfig, context: Context, data: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


class ConvertFileOperator(_DataFileOperator):
    """Convert one export data file into gzip'd canonical Extended JSON next to the export.

    Malformed or unrepresentable records go to the quarantine collection with file, line and reason;
    the task then fails naming them, unless the run's Param ``accept_quarantined`` is set.
    A file already converted from the same source object is not converted again.

    ``data_file`` is one entry of the list task's XCom.
    """

    def run_file(self, config: TableConfig, context: Context, data: dict[str, Any]) -> dict[str, Any]:
        s3 = self.aws(config, "s3")
        state = self.state(config)
        done = state.file_result(data["export_id"], data["data_key"]) or {}
        if done.get("convert_status") == "done" and done.get("source_etag") == data["etag"]:
            self.log.info("%s was already converted (%s items): skipping", data["data_key"], done["converted_items"])
            return {**data, "output_key": done["output_key"], "converted_items": done["converted_items"]}
        key_attrs = self.table_key(config, state.migration()).attrs
        accept = bool((context.get("params") or {}).get("accept_quarantined", False))

        def keep(bad: BadRecord) -> None:
            state.quarantine(data["export_id"], data["data_key"], bad.line, bad.reason, bad.raw)

        state.record_file(data["export_id"], data["data_key"], convert_status="running")
        try:
            result = convert_file(
                s3,
                data["bucket"],
                data["data_key"],
                manifest.reader_for(data["format"]),
                key_attrs,
                expected_items=data["items"],
                quarantine=keep,
                accept_quarantined=accept,
                fast_line=line_converter(data["format"], key_attrs),
            )
        except Exception:
            state.record_file(data["export_id"], data["data_key"], convert_status="failed")
            raise
        state.record_file(
            data["export_id"],
            data["data_key"],
            convert_status="done",
            source_etag=data["etag"],
            output_key=result.output_key,
            converted_items=result.items,
            quarantined=result.bad_count,
            convert_seconds=result.seconds,
        )
        return {**data, "output_key": result.output_key, "converted_items": result.items}


class ImportFileOperator(_DataFileOperator):
    """Load one converted file with unordered bulk upserts keyed by ``_id`` (write concern majority).

    Safe to repeat: the same records upsert to the same documents; a document that forward sync has
    already updated is newer than the export and is left as it is.

    ``data_file`` is the convert task's XCom for this file: its entry, with the converted output.
    """

    def run_file(self, config: TableConfig, context: Context, data: dict[str, Any]) -> dict[str, Any]:
        collection = self.mongo(config)[config.database][config.collection]
        state = self.state(config)
        result = import_file(
            self.aws(config, "s3"),
            data["bucket"],
            data["output_key"],
            collection,
            batch_size=config.imports.batch_size,
            write_concern=config.imports.write_concern,
            expected_items=data["converted_items"],
            guard_newer=state.migration().sync_started("forward"),
        )
        state.record_file(
            data["export_id"],
            data["data_key"],
            imported_items=result.applied,
            upserted=result.upserted,
            replaced=result.replaced,
            kept_newer=result.kept_newer,
            import_seconds=result.seconds,
        )
        return {"data_key": data["data_key"], "imported": result.applied, "kept_newer": result.kept_newer}


class ReconcileOperator(TableOperator):
    """Compare imported counts with the export manifest; fail listing every file that differs.

    :param export: the export task's XCom (templated).
    :param data_files: the list task's XCom (templated).
    """

    template_fields = ("export", "data_files")

    def __init__(self, *, export: Any, data_files: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.export = export
        self.data_files = data_files

    def run(self, config: TableConfig, context: Context) -> dict[str, Any]:
        state = self.state(config)
        export_id = self.export["export_id"]
        results = {r["data_key"]: r for r in state.file_results(export_id)}
        quarantined: dict[str, int] = {}
        for record in state.quarantined(export_id):
            quarantined[record["_id"]["file"]] = quarantined.get(record["_id"]["file"], 0) + 1
        collection = self.mongo(config)[config.database][config.collection]
        outcome = reconciliation.reconcile(
            manifest_items=int(self.export["item_count"] or 0),
            manifest_files=[(f["data_key"], f["items"]) for f in self.data_files],
            results=results,
            quarantined=quarantined,
            collection_count=collection.count_documents({}),
        )
        summary = outcome.summary()
        phase = Phase.FULL_LOAD_MISMATCH if summary["differences"] else Phase.FULL_LOAD_DONE
        state.update_migration(phase=phase, last_run_id=context["run_id"], full_load=summary)
        self.log.info("reconcile %s: %s", config.name, json.dumps(summary))
        reconciliation.check(outcome, config.name)
        return summary
