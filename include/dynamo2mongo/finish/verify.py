"""Verification: both sides compared item by item through the sync's content hash (DESIGN §2).

Memory stays flat whatever the table size: DynamoDB is read by parallel scan segments and each page
is looked up in MongoDB by ``_id`` (missing and different items); MongoDB is then read in ``_id``
batches that are looked up in DynamoDB with BatchGetItem (extra documents). Sampling reads a random
subset of scan segments and of MongoDB documents instead of everything.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import json
import logging
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import bson
from pymongo.collection import Collection
from pymongo.database import Database

from dynamo2mongo.finish import map_leaves
from dynamo2mongo.sync.dynamodb_items import BackwardApplyError, dynamodb_key
from dynamo2mongo.mapping.canonical import canonical_item, content_hash
from dynamo2mongo.progress import Progress
from dynamo2mongo.mapping import Unrepresentable, document_to_item, item_to_document
from dynamo2mongo.tally import Tally

log = logging.getLogger(__name__)

_LOOKUP_BATCH = 100  # BatchGetItem's limit, and a good $in size
# Keys kept for a re-check: on a table that takes writes, most differences are writes in flight.
SUSPECTS_KEPT = 10_000
_SCAN_PAGE = 1000


# The kinds of difference, each counted and with its first keys kept as examples.
KINDS = ("missing", "extra", "different", "unreadable")


@dataclass
class VerifyReport(Tally):
    table: str
    mode: str
    COUNTS = ("dynamodb_items", "mongodb_documents", "checked", *KINDS)
    examples: dict[str, list[Any]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    field_diff: dict[str, Any] | None = None
    seconds: float = 0.0
    suspects: list[Any] = field(default_factory=list)
    rechecked: int = 0

    @property
    def differences(self) -> int:
        return sum(getattr(self, kind) for kind in KINDS)

    def summary(self) -> dict[str, Any]:
        """The report as it is stored: every field but the suspects (kept for a re-check only), with
        the differences added up and the time it was made."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "suspects"}
        return {**fields, "differences": self.differences, "seconds": round(self.seconds, 1),
                "at": dt.datetime.now(dt.timezone.utc)}

    def describe(self) -> str:
        text = (
            f"{self.table}: {self.mode} verification checked {self.checked:,} items "
            f"(DynamoDB {self.dynamodb_items:,} scanned, MongoDB {self.mongodb_documents:,} read): "
            f"{self.missing} missing in MongoDB, {self.extra} extra in MongoDB, {self.different} different, "
            f"{self.unreadable} unreadable"
        )
        for kind, examples in self.examples.items():
            if examples:
                text += f"\n  {kind}: " + ", ".join(repr(e) for e in examples)
        if self.field_diff:
            text += f"\n  first difference, field by field: {self.field_diff}"
        return text


def field_diff(dynamodb_item: dict[str, Any], mongodb_item: dict[str, Any]) -> dict[str, Any]:
    """Top-level attributes that differ, with both canonical values (binary shown as hex)."""
    left, right = canonical_item(dynamodb_item), canonical_item(mongodb_item)
    diff = {}
    for name in sorted(set(left) | set(right)):
        if left.get(name) != right.get(name):
            diff[name] = {"dynamodb": _printable(left.get(name)), "mongodb": _printable(right.get(name))}
    return diff


def _printable(value: Any) -> Any:
    return map_leaves(value, lambda leaf: "0x" + leaf.hex() if isinstance(leaf, bytes) else leaf)


class _Recorder:
    def __init__(self, report: VerifyReport, examples: int):
        self.report = report
        self.limit = examples
        self.lock = threading.Lock()

    def note(self, kind: str, key: Any, diff: dict[str, Any] | None = None) -> None:
        with self.lock:
            setattr(self.report, kind, getattr(self.report, kind) + 1)
            if len(self.report.examples[kind]) < self.limit:
                self.report.examples[kind].append(key)
            if diff is not None and self.report.field_diff is None:
                self.report.field_diff = {"key": key, "fields": diff}
            if kind != "unreadable" and len(self.report.suspects) < SUSPECTS_KEPT:
                self.report.suspects.append(key)

    def count(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self.report, name, getattr(self.report, name) + value)


def _identity(value: Any) -> bytes:
    return bson.encode({"k": value})


def _compare_page(items: list[dict[str, Any]], key_attrs: tuple[str, ...], collection: Collection, rec: _Recorder) -> None:
    by_id: dict[bytes, tuple[Any, dict[str, Any]]] = {}
    for item in items:
        document_id = item_to_document({k: item[k] for k in key_attrs}, key_attrs)["_id"]
        by_id[_identity(document_id)] = (document_id, item)
    found: dict[bytes, dict[str, Any]] = {}
    for document in collection.find({"_id": {"$in": [v[0] for v in by_id.values()]}}):
        found[_identity(document["_id"])] = document
    for identity, (document_id, item) in by_id.items():
        document = found.get(identity)
        if document is None:
            rec.note("missing", document_id)
            continue
        try:
            mirrored = document_to_item(document)
        except Unrepresentable as error:
            rec.note("unreadable", {"_id": document_id, "reason": error.reason})
            continue
        if content_hash(mirrored) != content_hash(item):
            rec.note("different", document_id, field_diff(item, mirrored))
    rec.count(checked=len(by_id), dynamodb_items=len(items))


def _scan_segment(dynamodb: Any, table: str, segment: int, total: int, key_attrs: tuple[str, ...],
                  collection: Collection, rec: _Recorder, progress: Progress) -> None:
    # A page limit keeps each response small even where the 1 MB page cap does not apply (emulators).
    kwargs: dict[str, Any] = {"TableName": table, "Segment": segment, "TotalSegments": total, "ConsistentRead": True,
                              "Limit": _SCAN_PAGE}
    while True:
        page = dynamodb.scan(**kwargs)
        items = page.get("Items", [])
        for start in range(0, len(items), _LOOKUP_BATCH):
            _compare_page(items[start : start + _LOOKUP_BATCH], key_attrs, collection, rec)
        progress.advance(len(items))
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _lookup_extra(dynamodb: Any, table: str, key_attrs: tuple[str, ...], documents: list[dict[str, Any]],
                  rec: _Recorder) -> None:
    readable = []
    for document in documents:
        try:
            dynamodb_key(document["_id"], key_attrs)
        except (BackwardApplyError, Unrepresentable) as error:
            rec.note("unreadable", {"_id": document["_id"], "reason": f"_id does not follow the key convention ({error})"})
            continue
        readable.append(document["_id"])
    items = _batch_get(dynamodb, table, key_attrs, readable)
    present = {_identity(item_to_document({k: i[k] for k in key_attrs}, key_attrs)["_id"]) for i in items}
    for document_id in readable:
        if _identity(document_id) not in present:
            rec.note("extra", document_id)
    rec.count(mongodb_documents=len(documents))


def verify_keys(
    dynamodb: Any,
    table: str,
    key_attrs: tuple[str, ...],
    collection: Collection,
    document_ids: list[Any],
    *,
    examples: int = 10,
) -> VerifyReport:
    """Compare just these keys on both sides (BatchGetItem and ``_id`` lookups): the keys a workload
    or an incident touched, where a full scan would take too long."""
    started = time.monotonic()
    document_ids = list({_identity(i): i for i in document_ids}.values())
    report = VerifyReport(table=table, mode=f"{len(document_ids):,} chosen keys")
    rec = _Recorder(report, examples)
    for start in range(0, len(document_ids), _LOOKUP_BATCH):
        chunk = document_ids[start : start + _LOOKUP_BATCH]
        items = _batch_get(dynamodb, table, key_attrs, chunk)
        present = {_identity(item_to_document({k: i[k] for k in key_attrs}, key_attrs)["_id"]) for i in items}
        if items:
            _compare_page(items, key_attrs, collection, rec)
        absent = [i for i in chunk if _identity(i) not in present]
        if absent:
            for document in collection.find({"_id": {"$in": absent}}, {"_id": 1}):
                rec.note("extra", document["_id"])
    report.seconds = time.monotonic() - started
    return report


def _batch_get(dynamodb: Any, table: str, key_attrs: tuple[str, ...], document_ids: list[Any]) -> list[dict[str, Any]]:
    keys = [dynamodb_key(i, key_attrs) for i in document_ids]
    found: list[dict[str, Any]] = []
    pending: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True}} if keys else {}
    delay = 0.05
    while pending:
        response = dynamodb.batch_get_item(RequestItems=pending)
        found.extend(response.get("Responses", {}).get(table, []))
        pending = response.get("UnprocessedKeys") or {}
        if pending:
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    return found


def verify(
    dynamodb: Any,
    table: str,
    key_attrs: tuple[str, ...],
    collection: Collection,
    *,
    sample_fraction: float | None = None,
    segments: int = 4,
    examples: int = 10,
    seed: int | None = None,
) -> VerifyReport:
    """Compare the DynamoDB table with the collection, in full or on a sample (0 < fraction < 1)."""
    started = time.monotonic()
    sampled = sample_fraction is not None and sample_fraction < 1
    report = VerifyReport(table=table, mode=f"sampled {sample_fraction:.0%}" if sampled else "full")
    rec = _Recorder(report, examples)
    rng = random.Random(seed)
    total = max(segments, 100) if sampled else segments
    chosen = sorted(rng.sample(range(total), max(1, round(total * sample_fraction)))) if sampled else list(range(total))
    # The collection's count stands in for the table's (DescribeTable's ItemCount can be 6 h old): it
    # only feeds the ETA.
    documents = collection.estimated_document_count()
    progress = Progress(log, f"verify {table}: DynamoDB items compared", round(documents * len(chosen) / total))
    with concurrent.futures.ThreadPoolExecutor(min(segments, len(chosen))) as pool:
        for future in [
            pool.submit(_scan_segment, dynamodb, table, s, total, key_attrs, collection, rec, progress) for s in chosen
        ]:
            future.result()
    projection = {"_id": 1}
    progress.finish()
    if sampled:
        size = max(1, round(documents * sample_fraction))
        cursor = _sample_ids(collection, size)
    else:
        size = documents
        cursor = collection.find({}, projection)
    lookups = Progress(log, f"verify {table}: MongoDB documents looked up in DynamoDB", size)
    batch: list[dict[str, Any]] = []
    for document in cursor:
        batch.append(document)
        if len(batch) == _LOOKUP_BATCH:
            _lookup_extra(dynamodb, table, key_attrs, batch, rec)
            lookups.advance(len(batch))
            batch = []
    if batch:
        _lookup_extra(dynamodb, table, key_attrs, batch, rec)
        lookups.advance(len(batch))
    lookups.finish()
    report.seconds = time.monotonic() - started
    return report


def _sample_ids(collection: Collection, size: int) -> Iterator[dict[str, Any]]:
    """About ``size`` random ``_id``s, drawn by the server."""
    return collection.aggregate([{"$sample": {"size": size}}, {"$project": {"_id": 1}}])


VERIFICATIONS = "verifications"


def recheck(dynamodb: Any, table: str, key_attrs: tuple[str, ...], collection: Collection, report: VerifyReport,
            settle: Any = None, rounds: int = 3, examples: int = 10) -> VerifyReport:
    """Compare the differing keys again, after ``settle()`` (e.g. waiting until forward sync has applied
    everything written before the first pass); differences that persist over ``rounds`` re-checks are
    real, the others were writes in flight. Reports with more suspects than kept are left as they are.
    """
    if not report.differences or len(report.suspects) >= SUSPECTS_KEPT:
        return report
    current = report
    for _ in range(rounds):
        if settle is not None:
            settle()
        again = verify_keys(dynamodb, table, key_attrs, collection, current.suspects, examples=examples)
        again.unreadable += report.unreadable
        again.examples["unreadable"] = report.examples["unreadable"]
        again.mode = f"{report.mode}, {len(report.suspects):,} differing keys re-checked"
        again.dynamodb_items, again.mongodb_documents = report.dynamodb_items, report.mongodb_documents
        again.rechecked = len(report.suspects)
        current = again
        if not current.differences:
            break
    current.checked = report.checked
    return current


def store_report(db: Database, table: str, run_id: str, report: VerifyReport) -> dict[str, Any]:
    """Keep the report of one DAG run in the metadata database; a retry of the run replaces it.

    ``table`` is the configuration's name (the ``_id`` of the migration state); the report itself
    names the DynamoDB table (``source_table``). The field-by-field difference is kept as JSON text:
    its keys are DynamoDB attribute names, which may hold ``.`` or start with ``$``.
    """
    summary = report.summary()
    document = {
        "_id": {"table": table, "run_id": run_id},
        "table": table,
        "source_table": report.table,
        "run_id": run_id,
        **{k: v for k, v in summary.items() if k != "table"},
        "field_diff": json.dumps(summary["field_diff"], ensure_ascii=False) if summary["field_diff"] else None,
    }
    db[VERIFICATIONS].replace_one({"_id": document["_id"]}, document, upsert=True)
    return document


def latest_report(db: Database, table: str) -> dict[str, Any] | None:
    """The most recent stored verification of ``table`` (the configuration's name), or None."""
    return next(iter(db[VERIFICATIONS].find({"table": table}).sort("at", -1).limit(1)), None)
