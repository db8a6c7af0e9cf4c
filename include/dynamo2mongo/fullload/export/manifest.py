"""The export manifests AWS writes: manifest-summary.json and manifest-files.json (JSON lines)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dynamo2mongo.fullload.export import ddbjson, ion
from dynamo2mongo.errors import Permanent


class ManifestError(Permanent, ValueError):
    """A manifest is missing a field or is not the JSON AWS documents."""


@dataclass(frozen=True)
class ExportSummary:
    export_arn: str
    item_count: int
    output_format: str
    manifest_files_key: str
    export_time: str | None
    bucket: str | None
    prefix: str | None


@dataclass(frozen=True)
class DataFile:
    data_key: str
    item_count: int
    etag: str | None
    md5: str | None


def _require(record: dict[str, Any], key: str, where: str) -> Any:
    if key not in record or record[key] is None:
        raise ManifestError(f"{where}: required field {key!r} is missing")
    return record[key]


def parse_summary(text: str | bytes) -> ExportSummary:
    try:
        record = json.loads(text)
    except ValueError as error:
        raise ManifestError(f"manifest-summary.json is not valid JSON: {error}") from None
    where = "manifest-summary.json"
    return ExportSummary(
        export_arn=_require(record, "exportArn", where),
        item_count=int(_require(record, "itemCount", where)),
        output_format=_require(record, "outputFormat", where),
        manifest_files_key=_require(record, "manifestFilesS3Key", where),
        export_time=record.get("exportTime"),
        bucket=record.get("s3Bucket"),
        prefix=record.get("s3Prefix"),
    )


def parse_files(text: str | bytes) -> list[DataFile]:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    files = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"manifest-files.json line {number}"
        try:
            record = json.loads(line)
        except ValueError as error:
            raise ManifestError(f"{where}: not valid JSON: {error}") from None
        files.append(
            DataFile(
                data_key=_require(record, "dataFileS3Key", where),
                item_count=int(_require(record, "itemCount", where)),
                etag=record.get("etag"),
                md5=record.get("md5Checksum"),
            )
        )
    return files


def reader_for(output_format: str) -> Callable[[bytes | str], dict]:
    readers = {"ION": ion.parse_line, "DYNAMODB_JSON": ddbjson.parse_line}
    if output_format not in readers:
        raise ValueError(f"unknown export format {output_format!r}; expected ION or DYNAMODB_JSON")
    return readers[output_format]
