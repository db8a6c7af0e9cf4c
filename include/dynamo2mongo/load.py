"""Import converted Extended JSON files into MongoDB with idempotent, unordered bulk upserts."""

from __future__ import annotations

import gzip
import io
import json
import logging
from dataclasses import dataclass
from typing import Any

import bson
from bson import json_util
from pymongo import ReplaceOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError
from pymongo.write_concern import WriteConcern

from dynamo2mongo.progress import Progress

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
# Once forward sync runs, a document it wrote holds a newer state than the export: an import rerun
# must not overwrite it. With this guard the filter matches nothing, the upsert collides on _id, and
# that collision is counted, not raised. Before forward sync starts the guard is left out: it cannot
# match anything then. Servers without a query planner (see dynamo2mongo.mongo_caps) get the guard
# as a read of the batch's synced ids instead.
_NOT_YET_SYNCED = {"_ddb.sync": {"$exists": False}}


class ImportFailed(RuntimeError):
    """MongoDB rejected writes for reasons other than 'already newer'; the message lists examples."""


@dataclass
class ImportResult:
    key: str
    read: int = 0
    upserted: int = 0
    replaced: int = 0
    kept_newer: int = 0
    seconds: float = 0.0

    @property
    def applied(self) -> int:
        """Documents now present for this file's records."""
        return self.upserted + self.replaced + self.kept_newer


def _drop_synced(collection: Collection, batch: list[ReplaceOne], ids: list[Any], result: ImportResult) -> tuple[list, list]:
    # Filtering on _id alone keeps the read on the _id index of a server without a planner.
    synced = {
        bson.encode({"k": d["_id"]})
        for d in collection.find({"_id": {"$in": ids}}, {"_ddb.sync.seq": 1})
        if (d.get("_ddb") or {}).get("sync")
    }
    if not synced:
        return batch, ids
    kept = [(op, i) for op, i in zip(batch, ids) if bson.encode({"k": i}) not in synced]
    result.kept_newer += len(batch) - len(kept)
    return [op for op, _ in kept], [i for _, i in kept]


def _flush(
    collection: Collection, batch: list[ReplaceOne], ids: list[Any], result: ImportResult, key: str, read_guard: bool
) -> None:
    if read_guard:
        batch, ids = _drop_synced(collection, batch, ids, result)
        if not batch:
            return
    try:
        outcome = collection.bulk_write(batch, ordered=False)
        result.upserted += outcome.upserted_count
        result.replaced += outcome.matched_count
    except BulkWriteError as error:
        details = error.details
        others = [e for e in details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]
        if others:
            sample = "; ".join(f"_id={ids[e['index']]!r}: {e.get('errmsg')}" for e in others[:3])
            raise ImportFailed(
                f"{key}: MongoDB rejected {len(others)} of {len(batch)} writes in a batch ({sample}). "
                f"Nothing is lost: the converted file is intact; fix the cause and clear this task."
            ) from error
        result.upserted += details.get("nUpserted", 0)
        result.replaced += details.get("nMatched", 0)
        result.kept_newer += len(details.get("writeErrors", []))


def import_lines(
    lines: Any,
    collection: Collection,
    key: str,
    batch_size: int = 1000,
    progress: Progress | None = None,
    guard_newer: bool = True,
    planner: bool = True,
) -> ImportResult:
    """Upsert every Extended JSON line into ``collection`` by its ``_id``.

    ``guard_newer`` keeps documents that forward sync has already written (see _NOT_YET_SYNCED);
    ``planner`` says whether the server can serve that guard inside the write's filter.
    """
    result = ImportResult(key=key)
    guard = _NOT_YET_SYNCED if guard_newer and planner else {}
    read_guard = guard_newer and not planner
    batch: list[ReplaceOne] = []
    ids: list[Any] = []
    for line in lines:
        if not line.strip():
            continue
        document = json.loads(line, object_hook=json_util.object_hook)
        ids.append(document["_id"])
        batch.append(ReplaceOne({"_id": document["_id"], **guard}, document, upsert=True))
        result.read += 1
        if len(batch) >= batch_size:
            _flush(collection, batch, ids, result, key, read_guard)
            if progress is not None:
                progress.advance(len(batch))
            batch, ids = [], []
    if batch:
        _flush(collection, batch, ids, result, key, read_guard)
        if progress is not None:
            progress.advance(len(batch))
    return result


def import_file(
    s3: Any,
    bucket: str,
    key: str,
    collection: Collection,
    batch_size: int = 1000,
    write_concern: str = "majority",
    expected_items: int | None = None,
    guard_newer: bool = True,
    planner: bool = True,
) -> ImportResult:
    """Stream ``s3://bucket/key`` (gzip'd Extended JSON lines) into ``collection``; safe to repeat."""
    w: int | str = int(write_concern) if write_concern.isdigit() else write_concern
    target = collection.with_options(write_concern=WriteConcern(w=w))
    progress = Progress(log, f"import {key}", expected_items)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    with gzip.GzipFile(fileobj=body, mode="rb") as raw, io.BufferedReader(raw, 1 << 20) as source:
        result = import_lines(source, target, key, batch_size, progress, guard_newer, planner)
    result.seconds = progress.finish()
    return result
