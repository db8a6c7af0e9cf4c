"""AWS Lambda entry point of forward sync: one batch of DynamoDB stream records applied to MongoDB.

The event source mapping (dynamo2mongo.lambda_engine) delivers each shard's records in order and
retries from the lowest record the function names in its answer (ReportBatchItemFailures). The
answer names:

- for a key whose write MongoDB rejected, the key's earliest record in the batch: every record of that
  key is delivered again, and those already applied are skipped by their sequence numbers;
- a record that cannot be converted (forward.ForwardApplyError), logged with the reason. It fails
  again on every retry; bisecting isolates it and, once the retries are spent, Lambda hands it to the
  on-failure destination instead of dropping it unseen.

The other records of the batch are applied all the same: each carries its item's whole new image, so
applying a later record of a key never depends on an earlier one. As in the relay, backward sync's
own writes coming back are recognised by the echo ledger, and conflicts are resolved by the table's
policy and reported (forward.SyncContext).

Settings come from the environment the deploy task sets (lambda_engine.FunctionSettings); the MongoDB
URI is read from Secrets Manager once per execution environment (cold start), and one MongoClient
serves all of its invocations.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

import boto3
from pymongo import MongoClient
from pymongo.collection import Collection

from dynamo2mongo import forward
from dynamo2mongo.checkpoints import Heartbeat
from dynamo2mongo.echo import EchoLedger
from dynamo2mongo.lambda_engine import FunctionSettings
from dynamo2mongo.mongo_caps import plans_compound_filters

log = logging.getLogger("dynamo2mongo.lambda")
log.setLevel(logging.INFO)

TOMBSTONES = "tombstones"


@dataclass(frozen=True)
class Runtime:
    collection: Collection
    tombstones: Collection
    heartbeat: Heartbeat
    guarded: bool
    sync: forward.SyncContext


@functools.lru_cache(maxsize=1)
def runtime(settings: FunctionSettings) -> Runtime:
    """The MongoDB side, built once per execution environment (a failed attempt is not cached)."""
    secret = boto3.client("secretsmanager").get_secret_value(SecretId=settings.mongo_secret_id)
    client: MongoClient = MongoClient(secret["SecretString"], appname=f"dynamo2mongo-lambda/{settings.table}")
    meta = client[settings.metadata_database]
    collection = client[settings.database][settings.collection]
    return Runtime(
        collection=collection,
        tombstones=meta[TOMBSTONES],
        heartbeat=Heartbeat(meta, settings.table, "forward"),
        guarded=plans_compound_filters(collection.database),
        # As in the relay: backward sync's echoes are recognised, conflicts resolved and reported.
        sync=forward.SyncContext(
            EchoLedger(meta, settings.table), settings.conflict_policy, boto3.client("dynamodb"), settings.source_table
        ),
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str | None]]]:
    records = event.get("Records") or []
    settings = FunctionSettings.from_env(os.environ)
    mongo = runtime(settings)
    changes: list[forward.Change] = []
    earliest: dict[bytes, str] = {}
    retry: list[str | None] = []
    unconvertible = 0
    for record in records:
        sequence_number = (record.get("dynamodb") or {}).get("SequenceNumber")
        try:
            change = forward.to_change(record, settings.key_attrs, settings.number_mapping, binary_as_base64=True)
        except forward.ForwardApplyError as error:
            log.error("table %s: %s; reported as a batch item failure", settings.table, error)
            unconvertible += 1
            retry.append(sequence_number)
            continue
        earliest.setdefault(change.identity, sequence_number)
        changes.append(change)
    result = forward.apply_changes(
        changes, mongo.collection, mongo.tombstones, settings.table, mongo.guarded, mongo.sync
    )
    for change, reason in result.failed:
        log.error(
            "table %s: MongoDB rejected the write of _id=%r (sequence number %s): %s; reported as a batch item failure",
            settings.table,
            change.id,
            change.seq.lstrip("0"),
            reason,
        )
        retry.append(earliest[change.identity])
    counts = {**result.counts(), "records": len(records), "unconvertible": unconvertible}
    facts: dict[str, Any] = {"engine": "lambda", "counts": counts}
    if records:
        facts["stream"] = records[0].get("eventSourceARN")
    if result.newest_created is not None:
        facts["newest_created"] = result.newest_created
    if result.newest_independent is not None:
        facts["newest_independent"] = result.newest_independent
    mongo.heartbeat.beat("failing" if retry else "applying", force=True, **facts)
    log.info(
        "table %s: batch %s..%s applied to %s.%s: %s",
        settings.table,
        (records[0].get("dynamodb") or {}).get("SequenceNumber") if records else "-",
        (records[-1].get("dynamodb") or {}).get("SequenceNumber") if records else "-",
        settings.database,
        settings.collection,
        json.dumps(counts),
    )
    return {"batchItemFailures": [{"itemIdentifier": s} for s in dict.fromkeys(retry)]}
