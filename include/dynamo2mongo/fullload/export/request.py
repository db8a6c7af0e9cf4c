"""Starting a point-in-time export idempotently and reading where its manifest is."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from dynamo2mongo.aws_errors import error_code
from dynamo2mongo.errors import Permanent

_TOKEN_NAMESPACE = uuid.UUID("2f0d8c57-8d55-4c1c-9a57-6a0c0f7b5e1d")


class ExportError(Permanent, RuntimeError):
    """The export cannot start or did not complete; the message says what to do."""


@dataclass(frozen=True)
class ExportInfo:
    arn: str
    status: str
    export_format: str
    export_time: str | None
    bucket: str
    prefix: str
    manifest_key: str | None
    item_count: int | None
    # When DynamoDB started and finished the export, and the bytes it read: a later export of the
    # same table estimates its duration from them.
    start_time: str | None = None
    end_time: str | None = None
    billed_size_bytes: int | None = None

    @property
    def export_id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]

    def facts(self) -> dict[str, Any]:
        """The small, JSON-safe facts that go to XCom and the state store: every field but the status,
        the ARN and the format under the names the state store has always used, and the export's id."""
        facts = dataclasses.asdict(self)
        del facts["status"]
        return {"export_arn": facts.pop("arn"), "export_id": self.export_id, "format": facts.pop("export_format"),
                **facts}


def client_token(dag_id: str, run_id: str) -> str:
    """Same DAG run, same token: DynamoDB then returns the running export instead of a second one."""
    return str(uuid.uuid5(_TOKEN_NAMESPACE, f"{dag_id}/{run_id}"))


def ensure_pitr(dynamodb: Any, table_name: str, allow_enable: bool) -> bool:
    """Make sure point-in-time recovery is on. Returns True when this call turned it on."""
    status = dynamodb.describe_continuous_backups(TableName=table_name)["ContinuousBackupsDescription"]
    if status.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus") == "ENABLED":
        return False
    if not allow_enable:
        raise ExportError(
            f"table {table_name!r}: point-in-time recovery is off, and exports need it. Turn it on "
            f"(aws dynamodb update-continuous-backups --table-name {table_name} "
            f"--point-in-time-recovery-specification PointInTimeRecoveryEnabled=true), or set "
            f"export.enable_pitr: true in the table configuration to let the migration do it (PITR is billed)."
        )
    dynamodb.update_continuous_backups(
        TableName=table_name,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    return True


def _iso(moment: Any) -> str | None:
    return moment.astimezone(dt.timezone.utc).isoformat() if isinstance(moment, dt.datetime) else moment


def _describe(description: dict[str, Any]) -> ExportInfo:
    return ExportInfo(
        arn=description["ExportArn"],
        status=description["ExportStatus"],
        export_format=description.get("ExportFormat", "DYNAMODB_JSON"),
        export_time=_iso(description.get("ExportTime")),
        bucket=description["S3Bucket"],
        prefix=description.get("S3Prefix", ""),
        manifest_key=description.get("ExportManifest"),
        item_count=description.get("ItemCount"),
        start_time=_iso(description.get("StartTime")),
        end_time=_iso(description.get("EndTime")),
        billed_size_bytes=description.get("BilledSizeBytes"),
    )


def export_estimate(earlier: list[dict[str, Any]], table_bytes: int | None, started: str | None) -> str:
    """When an export of ``table_bytes`` started at ``started`` should end, from the read rate of this
    table's latest finished export. DynamoDB reports no progress for a running export: this is the
    only ETA there is, and none is given without an earlier export to learn the rate from."""
    rates = []
    for export in earlier:
        if not (export.get("start_time") and export.get("end_time") and export.get("billed_size_bytes")):
            continue
        took = (dt.datetime.fromisoformat(export["end_time"]) - dt.datetime.fromisoformat(export["start_time"]))
        if took.total_seconds() > 0:
            rates.append((export["end_time"], export["billed_size_bytes"] / took.total_seconds()))
    if table_bytes is None:
        return "table size unknown (no preflight facts); no ETA: DynamoDB reports no export progress"
    size = f"{table_bytes / 2**20:,.1f} MiB as of DescribeTable"
    if not rates or not started:
        return f"{size}; no ETA: DynamoDB reports no export progress and this table has no earlier export to time"
    rate = max(rates)[1]
    eta = dt.datetime.fromisoformat(started) + dt.timedelta(seconds=table_bytes / rate)
    return (f"{size}; ETA {eta.astimezone(dt.timezone.utc):%H:%M} UTC at the previous export's "
            f"{rate / 2**20:,.1f} MiB/s (DynamoDB reports no export progress)")


def start_export(
    dynamodb: Any,
    table_arn: str,
    bucket: str,
    prefix: str,
    export_format: str,
    token: str,
) -> ExportInfo:
    """ExportTableToPointInTime with a ClientToken, so a retried task finds its own export."""
    try:
        response = dynamodb.export_table_to_point_in_time(
            TableArn=table_arn,
            S3Bucket=bucket,
            S3Prefix=prefix,
            ExportFormat=export_format,
            ExportType="FULL_EXPORT",
            ClientToken=token,
        )
    except ClientError as error:
        code = error_code(error)
        hint = {
            "PointInTimeRecoveryUnavailableException": "point-in-time recovery is off: enable it and retry",
            "ExportConflictException": "an export with this client token but other parameters exists; "
            "the configuration changed under a running DAG run: start a new run",
            "LimitExceededException": "too many exports are running in this account: wait and retry",
        }.get(code, "check dynamodb:ExportTableToPointInTime and s3:PutObject permissions on the bucket")
        raise ExportError(f"export of {table_arn} to s3://{bucket}/{prefix} failed ({code}): {hint}") from error
    return _describe(response["ExportDescription"])


def describe_export(dynamodb: Any, export_arn: str) -> ExportInfo:
    return _describe(dynamodb.describe_export(ExportArn=export_arn)["ExportDescription"])


def completed_export(dynamodb: Any, export_arn: str) -> ExportInfo:
    """The export's facts once COMPLETED; a clear error for FAILED or unfinished exports."""
    description = dynamodb.describe_export(ExportArn=export_arn)["ExportDescription"]
    info = _describe(description)
    if info.status == "FAILED":
        raise ExportError(
            f"export {export_arn} failed: {description.get('FailureCode')}: {description.get('FailureMessage')}. "
            f"Fix the cause (bucket permissions or KMS key, most often) and clear the export task."
        )
    if info.status != "COMPLETED":
        raise ExportError(f"export {export_arn} is {info.status}, not COMPLETED")
    if not info.manifest_key:
        raise ExportError(f"export {export_arn} is COMPLETED but names no ExportManifest")
    return info
