"""Import converted Extended JSON files into MongoDB with idempotent, unordered bulk writes."""

from __future__ import annotations

import gzip
import io
import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import bson
from bson import json_util
from bson.raw_bson import RawBSONDocument
from pymongo import ReplaceOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError
from pymongo.write_concern import WriteConcern

from dynamo2mongo.mapping import extjson
from dynamo2mongo.mongo_errors import DUPLICATE_KEY, other_unique_index
from dynamo2mongo.progress import Progress
from dynamo2mongo.errors import Permanent

log = logging.getLogger(__name__)

# Once forward sync runs, a document it wrote (its mark has a sequence number; an exported item's mark
# has none) holds a newer state than the export: an import rerun
# must not overwrite it. With this guard the filter matches nothing, the upsert collides on _id, and
# that collision is counted, not raised. Before forward sync starts the guard is left out: it cannot
# match anything then.
_NOT_YET_SYNCED = {"_ddb.sync.seq": {"$not": {"$gt": ""}}}
# Batches parsed ahead of the one being written: parsing overlaps the server's work, memory stays
# bounded.
_BATCHES_AHEAD = 2

class ImportFailed(Permanent, RuntimeError):
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


def _flush(collection: Collection, batch: list[ReplaceOne], ids: list[Any], result: ImportResult, key: str) -> None:
    try:
        outcome = collection.bulk_write(batch, ordered=False)
        result.upserted += outcome.upserted_count
        result.replaced += outcome.matched_count
    except BulkWriteError as error:
        details = error.details
        failure = _failure(key, details.get("writeErrors", []), ids, len(batch))
        if failure is not None:
            raise failure from error
        result.upserted += details.get("nUpserted", 0)
        result.replaced += details.get("nMatched", 0)
        result.kept_newer += len(details.get("writeErrors", []))


def _parsed_batches(lines: Iterable[Any], batch_size: int) -> Iterator[list[RawBSONDocument]]:
    batch: list[RawBSONDocument] = []
    for line in lines:
        if not line or line.isspace():
            continue
        # Encoded here, in the parsing thread: the writing thread sends the bytes as they are, and
        # the parsed objects are freed at once instead of waiting in the batch for the collector.
        batch.append(RawBSONDocument(bson.encode(extjson.loads(line))))
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _failure(key: str, errors: list[dict[str, Any]], ids: list[Any], size: int) -> ImportFailed | None:
    """The error for a batch's write errors, or None when each is an ``_id`` collision."""
    others = [e for e in errors if e.get("code") != DUPLICATE_KEY]
    if others:
        sample = "; ".join(f"_id={json_util.dumps(ids[e['index']])}: {e.get('errmsg')}" for e in others[:3])
        return ImportFailed(
            f"{key}: MongoDB rejected {len(others)} of {size} writes in a batch ({sample}). "
            f"Nothing is lost: the converted file is intact; fix the cause and clear this task."
        )
    conflicts = [(e, found) for e in errors if (found := other_unique_index(e)) is not None]
    if conflicts:
        sample = "; ".join(
            f"_id={json_util.dumps(ids[e['index']])}: unique index {index}, duplicate key {duplicate}"
            for e, (index, duplicate) in conflicts[:3]
        )
        return ImportFailed(
            f"{key}: {len(conflicts)} of {size} documents in a batch collide with other documents on a "
            f"unique index other than _id ({sample}). They were not written: an import replaces a "
            f"document only by its own _id. Nothing is lost: the converted file is intact; remove the "
            f"duplicate values or the unique index, then clear this task."
        )
    return None


def _insert_new(collection: Collection, documents: list[RawBSONDocument], result: ImportResult, key: str) -> list[RawBSONDocument]:
    """Insert the documents whose ``_id`` is not there yet; return the others, for the guarded replace.

    An insert never overwrites, so it needs no guard, and on a first import (nearly every document
    new) it costs the server and the driver less than an upsert.
    """
    try:
        collection.insert_many(documents, ordered=False)
        result.upserted += len(documents)
        return []
    except BulkWriteError as error:
        errors = error.details.get("writeErrors", [])
        failure = _failure(key, errors, [d["_id"] for d in documents], len(documents))
        if failure is not None:
            raise failure from error
        # Every document without a write error was inserted (some servers misreport nInserted).
        result.upserted += len(documents) - len(errors)
        return [documents[e["index"]] for e in errors]


def _ahead(batches: Iterator[Any]) -> Iterator[Any]:
    """Run ``batches`` in a thread, up to _BATCHES_AHEAD in advance; its errors are raised here."""
    ready: queue.Queue = queue.Queue(_BATCHES_AHEAD)
    stop = threading.Event()
    done = object()

    def offer(item: Any, error: BaseException | None) -> bool:
        while not stop.is_set():
            try:
                ready.put((item, error), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in batches:
                if not offer(item, None):
                    return
            offer(done, None)
        except BaseException as error:  # handed to the consumer, which raises it
            offer(done, error)

    thread = threading.Thread(target=produce, name="d2m-import-parse", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join()


def import_lines(
    lines: Any,
    collection: Collection,
    key: str,
    batch_size: int = 1000,
    progress: Progress | None = None,
    guard_newer: bool = True,
) -> ImportResult:
    """Write every Extended JSON line into ``collection`` by its ``_id``; safe to repeat.

    ``guard_newer`` keeps documents that forward sync has already written (see _NOT_YET_SYNCED). Lines are
    parsed in a second thread while the previous batch is written. Documents new to the collection
    are inserted; only those already there go through the guarded upsert.
    """
    result = ImportResult(key=key)
    guard = _NOT_YET_SYNCED if guard_newer else {}
    for documents in _ahead(_parsed_batches(lines, batch_size)):
        result.read += len(documents)
        existing = _insert_new(collection, documents, result, key)
        if existing:
            ids = [d["_id"] for d in existing]
            batch = [ReplaceOne({"_id": d["_id"], **guard}, d, upsert=True) for d in existing]
            _flush(collection, batch, ids, result, key)
        if progress is not None:
            progress.advance(len(documents))
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
) -> ImportResult:
    """Stream ``s3://bucket/key`` (gzip'd Extended JSON lines) into ``collection``; safe to repeat."""
    w: int | str = int(write_concern) if write_concern.isdigit() else write_concern
    target = collection.with_options(write_concern=WriteConcern(w=w))
    progress = Progress(log, f"import {key}", expected_items)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    with gzip.GzipFile(fileobj=body, mode="rb") as raw, io.BufferedReader(raw, 1 << 20) as source:
        result = import_lines(source, target, key, batch_size, progress, guard_newer)
    result.seconds = progress.finish()
    return result
