"""Make moto's table export write the layout AWS documents (sandbox and tests only).

moto writes one DynamoDB JSON file whatever format is asked, no manifests, an ARN unlike AWS's,
ignores ClientToken and ExportTime, and its DescribeExport lacks ExportManifest and the times. The
production code reads exports exactly as on AWS, so the moto server we start installs this patch:

    <prefix>/AWSDynamoDB/<ExportId>/_started
    <prefix>/AWSDynamoDB/<ExportId>/data/<random>.ion.gz | .json.gz   (several files)
    <prefix>/AWSDynamoDB/<ExportId>/manifest-files.json  (+ .md5)
    <prefix>/AWSDynamoDB/<ExportId>/manifest-summary.json  (+ .md5)
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import json
import os
import time
import uuid
from typing import Any

from moto.core.responses import ActionResult
from moto.dynamodb.exceptions import PointInTimeRecoveryUnavailable, TableNotFoundException
from moto.dynamodb.models.table_export import TableExport
from moto.dynamodb.models.utilities import dynamo_json_dump
from moto.dynamodb.responses import DynamoHandler

from dynamo2mongo.fullload.export.ddbjson import parse_line as parse_ddb_json
from dynamo2mongo.sandbox.ion_writer import dump_line as ion_line
from dynamo2mongo.sandbox.servers import ITEMS_PER_FILE_ENV



def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _md5s(body: bytes) -> tuple[str, str]:
    digest = hashlib.md5(body)
    return base64.b64encode(digest.digest()).decode(), digest.hexdigest()


class AwsLayoutExport(TableExport):
    """A moto export that writes AWS's documented output."""

    def __init__(self, *args: Any, client_token: str | None, export_time: float | None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.start_time = time.time()
        self.end_time: float | None = None
        self.export_time = export_time or self.start_time
        self.client_token = client_token or str(uuid.uuid4())
        self.export_id = f"{int(self.start_time * 1000):014d}-{uuid.uuid4().hex[:8]}"
        self.arn = f"{self.table.table_arn}/export/{self.export_id}"
        self.directory = f"{self.s3_prefix}/AWSDynamoDB/{self.export_id}" if self.s3_prefix else f"AWSDynamoDB/{self.export_id}"
        self.manifest_key = f"{self.directory}/manifest-summary.json"

    def _backup_to_s3_file(self, s3_backend: Any) -> None:
        per_file = int(os.environ.get(ITEMS_PER_FILE_ENV, "20000"))
        ion = self.export_format == "ION"
        s3_backend.put_object(bucket_name=self.s3_bucket, key_name=f"{self.directory}/_started", value=b"")
        items = list(self.table.all_items())
        manifest_lines = []
        for start in range(0, len(items), per_file):
            lines = []
            for item in items[start : start + per_file]:
                # moto's own encoder turns its binary values into DynamoDB JSON's base64 strings
                line = dynamo_json_dump(item.to_json(root_attr_name="Item"))
                self.processed_bytes += item.size()
                lines.append(ion_line(parse_ddb_json(line)) if ion else line)
            if ion and not manifest_lines:
                lines[0] = "$ion_1_0 " + lines[0]
            body = gzip.compress(("\n".join(lines) + "\n").encode("utf-8"))
            key = f"{self.directory}/data/{uuid.uuid4().hex[:26]}.{'ion' if ion else 'json'}.gz"
            s3_backend.put_object(bucket_name=self.s3_bucket, key_name=key, value=body)
            md5_base64, md5_hex = _md5s(body)
            manifest_lines.append(
                json.dumps({"itemCount": len(lines), "md5Checksum": md5_base64, "etag": md5_hex, "dataFileS3Key": key})
            )
            self.item_count += len(lines)
        files_body = "".join(line + "\n" for line in manifest_lines).encode()
        files_key = f"{self.directory}/manifest-files.json"
        s3_backend.put_object(bucket_name=self.s3_bucket, key_name=files_key, value=files_body)
        s3_backend.put_object(bucket_name=self.s3_bucket, key_name=f"{files_key[:-5]}.md5", value=_md5s(files_body)[1].encode())
        self.end_time = time.time()
        summary = {
            "version": "2020-06-30",
            "exportArn": self.arn,
            "startTime": _iso(self.start_time),
            "endTime": _iso(self.end_time),
            "tableArn": self.table.table_arn,
            "tableId": str(uuid.uuid5(uuid.NAMESPACE_URL, self.table.table_arn)),
            "exportTime": _iso(self.export_time),
            "s3Bucket": self.s3_bucket,
            "s3Prefix": self.s3_prefix or None,
            "s3SseAlgorithm": "AES256",
            "s3SseKmsKeyId": None,
            "manifestFilesS3Key": files_key,
            "billedSizeBytes": self.processed_bytes,
            "itemCount": self.item_count,
            "outputFormat": self.export_format,
            "exportType": self.export_type,
        }
        summary_body = json.dumps(summary, indent=2).encode()
        s3_backend.put_object(bucket_name=self.s3_bucket, key_name=self.manifest_key, value=summary_body)
        s3_backend.put_object(
            bucket_name=self.s3_bucket, key_name=f"{self.manifest_key[:-5]}.md5", value=_md5s(summary_body)[1].encode()
        )
        self.status = "COMPLETED"

    def response(self) -> dict[str, Any]:
        description = super().response()
        description.update(
            {
                "ExportArn": self.arn,
                "ClientToken": self.client_token,
                "StartTime": self.start_time,
                "ExportTime": self.export_time,
                "ExportManifest": self.manifest_key,
            }
        )
        if self.end_time is not None:
            description["EndTime"] = self.end_time
        return {k: v for k, v in description.items() if v is not None}


def _export_table_to_point_in_time(handler: DynamoHandler) -> Any:
    body = handler.body
    backend = handler.dynamodb_backend
    token = body.get("ClientToken")
    for existing in backend.table_exports.values():
        if token and getattr(existing, "client_token", None) == token:
            return ActionResult({"ExportDescription": existing.response()})
    table = next((t for t in backend.tables.values() if t.table_arn == body["TableArn"]), None)
    if table is None:
        raise TableNotFoundException(name=body["TableArn"])
    pitr = table.continuous_backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]
    if pitr != "ENABLED":
        raise PointInTimeRecoveryUnavailable(name=table.name)
    export = AwsLayoutExport(
        s3_bucket=body["S3Bucket"],
        s3_prefix=body.get("S3Prefix", ""),
        region_name=backend.region_name,
        account_id=body.get("S3BucketOwner") or backend.account_id,
        table=table,
        export_format=body.get("ExportFormat", "DYNAMODB_JSON"),
        export_type=body.get("ExportType", "FULL_EXPORT"),
        client_token=token,
        export_time=body.get("ExportTime"),
    )
    backend.table_exports[export.arn] = export
    export.start()
    return ActionResult({"ExportDescription": export.response()})


def install() -> None:
    """Patch moto in this process; idempotent."""
    DynamoHandler.export_table_to_point_in_time = _export_table_to_point_in_time
