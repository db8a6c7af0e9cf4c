"""Convert one export data file into gzip'd canonical MongoDB Extended JSON lines.

The output sits next to the export (``.../AWSDynamoDB/<ExportId>/mongo-extjson/``) and is readable
by mongoimport (after gunzip) as well as by our import step. Memory stays flat whatever the file
size: the input is streamed from S3 line by line and the output goes through a local temporary file
that is uploaded in parts.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dynamo2mongo.mapping import extjson
from dynamo2mongo.fullload.export import MalformedRecord
from dynamo2mongo.progress import Progress
from dynamo2mongo.sync.records import baseline_mark
from dynamo2mongo.mapping import RESERVED, Unrepresentable, item_to_document
from dynamo2mongo.errors import Permanent

log = logging.getLogger(__name__)

OUTPUT_DIR = "mongo-extjson"
_EXAMPLES = 5
_PROGRESS_EVERY = 1024


@dataclass(frozen=True)
class BadRecord:
    line: int
    reason: str
    raw: str


@dataclass
class ConvertResult:
    data_key: str
    output_key: str
    items: int = 0
    bad_count: int = 0
    bad_examples: list[BadRecord] = field(default_factory=list)
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0


class ConversionFailed(Permanent, RuntimeError):
    """Some records of a file could not be converted; they are quarantined, the file is not imported."""

    def __init__(self, result: ConvertResult, bucket: str):
        self.result = result
        examples = "; ".join(f"line {b.line}: {b.reason}" for b in result.bad_examples)
        more = f" (and {result.bad_count - len(result.bad_examples)} more)" if result.bad_count > _EXAMPLES else ""
        super().__init__(
            f"s3://{bucket}/{result.data_key}: {result.bad_count} record(s) could not be converted: "
            f"{examples}{more}. The raw lines are in the quarantine collection of the metadata database; "
            f"the other {result.items:,} records of this file were not imported. Fix the data or accept "
            f"the quarantine (trigger Param accept_quarantined), then clear this task."
        )


def output_key_for(data_key: str) -> str:
    """``<prefix>/AWSDynamoDB/<id>/data/abc.json.gz`` -> ``<prefix>/AWSDynamoDB/<id>/mongo-extjson/abc.jsonl.gz``."""
    directory, _, name = data_key.rpartition("/")
    export_dir = directory.rpartition("/")[0] if directory.endswith("/data") or directory == "data" else directory
    stem = name.split(".", 1)[0]
    return f"{export_dir}/{OUTPUT_DIR}/{stem}.jsonl.gz" if export_dir else f"{OUTPUT_DIR}/{stem}.jsonl.gz"


def _raw_text(line: bytes) -> str:
    return line.decode("utf-8", errors="backslashreplace").rstrip("\n")


def convert_lines(
    lines: Iterator[bytes],
    parse_line: Callable[[bytes], dict],
    key_attrs: tuple[str, ...],
    sink: Callable[[str], Any],
    on_bad: Callable[[BadRecord], None],
    result: ConvertResult,
    progress: Progress | None = None,
    fast_line: Callable[[bytes], str | None] | None = None,
) -> None:
    """Convert export lines to Extended JSON text handed to ``sink``; bad records go to ``on_bad``.

    ``fast_line`` (``native.line_converter``) converts a line in one compiled step, or answers None
    for a line this function converts (or quarantines) itself.
    """
    # Looked up per call, not per line; still the module's names, so a caller may wrap them.
    to_document, dumps = item_to_document, extjson.dumps
    pending = 0
    for number, line in enumerate(lines, start=1):
        result.bytes_in += len(line)
        if not line or line.isspace():
            continue
        converted = fast_line(line) if fast_line is not None else None
        if converted is not None:
            sink(converted)
            result.items += 1
            pending += 1
            if pending == _PROGRESS_EVERY and progress is not None:
                progress.advance(pending)
                pending = 0
            continue
        try:
            item = parse_line(line)
            document = to_document(item, key_attrs)
        except (MalformedRecord, Unrepresentable) as error:
            bad = BadRecord(number, getattr(error, "reason", None) or str(error), _raw_text(line))
            result.bad_count += 1
            if len(result.bad_examples) < _EXAMPLES:
                result.bad_examples.append(bad)
            on_bad(bad)
            continue
        # The exported content's hash: conflict detection tells application changes by it.
        document.setdefault(RESERVED, {})["sync"] = baseline_mark(item)
        sink(dumps(document) + "\n")
        result.items += 1
        pending += 1
        if pending == _PROGRESS_EVERY and progress is not None:
            progress.advance(pending)
            pending = 0
    if pending and progress is not None:
        progress.advance(pending)


def convert_file(
    s3: Any,
    bucket: str,
    data_key: str,
    parse_line: Callable[[bytes], dict],
    key_attrs: tuple[str, ...],
    *,
    quarantine: Callable[[BadRecord], None],
    expected_items: int | None = None,
    accept_quarantined: bool = False,
    fast_line: Callable[[bytes], str | None] | None = None,
) -> ConvertResult:
    """Stream ``s3://bucket/data_key`` through the mapping and upload the Extended JSON output.

    Bad records are handed to ``quarantine`` (with their line number and raw text) as they are met,
    so nothing is lost and memory stays flat even for a file of garbage. Unless ``accept_quarantined``, a file with bad records is not uploaded
    and ConversionFailed names the lines.
    """
    result = ConvertResult(data_key=data_key, output_key=output_key_for(data_key))
    progress = Progress(log, f"convert {data_key}", expected_items)
    body = s3.get_object(Bucket=bucket, Key=data_key)["Body"]
    with tempfile.NamedTemporaryFile(prefix="d2m-convert-", suffix=".jsonl.gz") as tmp:
        with gzip.GzipFile(fileobj=body, mode="rb") as raw, io.BufferedReader(raw, 1 << 20) as source:
            with gzip.open(tmp.name, "wt", encoding="utf-8", compresslevel=1) as out:
                convert_lines(iter(source), parse_line, key_attrs, out.write, quarantine, result, progress,
                              fast_line)
        if result.bad_count and not accept_quarantined:
            raise ConversionFailed(result, bucket)
        result.bytes_out = os.path.getsize(tmp.name)
        s3.upload_file(
            tmp.name,
            bucket,
            result.output_key,
            ExtraArgs={
                "ContentType": "application/x-ndjson",
                "Metadata": {"d2m-items": str(result.items), "d2m-source": data_key},
            },
        )
    result.seconds = progress.finish()
    return result
