"""AWS Lambda entry point of forward sync: one batch of DynamoDB stream records applied to MongoDB.

The event source mapping (dynamo2mongo.engines.aws_lambda) delivers each shard's records in order. The
same apply function as the relay's decides every record: replays are skipped by the key's sequence
number kept in the metadata database (a redelivered older batch changes nothing, whatever the
application did to the document meanwhile), backward sync's own writes coming back are recognised
by the echo ledger, conflicts are resolved by the table's policy and reported (forward.SyncContext).
A record that cannot be converted, or whose write MongoDB refuses, is quarantined
(dynamo2mongo.sync.quarantine), so it never holds the shard back; the answer names no failed item. An
error that may heal (MongoDB unreachable) fails the invocation, and Lambda retries the batch.

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

from dynamo2mongo.sync import forward
from dynamo2mongo.sync.checkpoints import Heartbeat, RelayStatus
from dynamo2mongo.sync.echo import EchoLedger
from dynamo2mongo.sync.keystate import KeyStates
from dynamo2mongo.engines.aws_lambda import FunctionSettings
from dynamo2mongo.sync.quarantine import Quarantine
from dynamo2mongo.sync.typememory import TableTypes

log = logging.getLogger("dynamo2mongo.lambda")
log.setLevel(logging.INFO)

@dataclass(frozen=True)
class Runtime:
    collection: Collection
    keys: KeyStates
    quarantine: Quarantine
    heartbeat: Heartbeat
    sync: forward.SyncContext


@functools.lru_cache(maxsize=1)
def runtime(settings: FunctionSettings) -> Runtime:
    """The MongoDB side, built once per execution environment (a failed attempt is not cached)."""
    secret = boto3.client("secretsmanager").get_secret_value(SecretId=settings.mongo_secret_id)
    # Timezone-aware like every client of the project (dynamo2mongo.connections, which the package
    # cannot import: it reads the table configuration, whose YAML parser is not shipped).
    client: MongoClient = MongoClient(secret["SecretString"], tz_aware=True,
                                      appname=f"dynamo2mongo-lambda/{settings.table}")
    meta = client[settings.metadata_database]
    collection = client[settings.database][settings.collection]
    return Runtime(
        collection=collection,
        keys=KeyStates(meta, settings.table),
        quarantine=Quarantine(meta, settings.table),
        heartbeat=Heartbeat(meta, settings.table, "forward"),
        # As in the relay: backward sync's echoes are recognised, conflicts resolved and reported.
        sync=forward.SyncContext(
            EchoLedger(meta, settings.table), settings.conflict_policy, boto3.client("dynamodb"), settings.source_table,
            TableTypes(meta, settings.table),
        ),
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str | None]]]:
    records = event.get("Records") or []
    settings = FunctionSettings.from_env(os.environ)
    mongo = runtime(settings)
    result = forward.apply_records(
        records, mongo.collection, mongo.keys, settings.table, settings.key_attrs, settings.number_mapping,
        binary_as_base64=True, sync=mongo.sync, quarantine=mongo.quarantine,
    )
    for change, reason in result.failed:
        log.error("table %s: MongoDB refused _id=%r (sequence number %s): %s; quarantined",
                  settings.table, change.id, change.seq.lstrip("0"), reason)
    counts = result.counts()
    facts: dict[str, Any] = {"engine": "lambda", "counts": counts}
    if records:
        facts["stream"] = records[0].get("eventSourceARN")
    if result.newest_created is not None:
        facts["newest_created"] = result.newest_created
    if result.newest_independent is not None:
        facts["newest_independent"] = result.newest_independent
    mongo.heartbeat.beat(RelayStatus.APPLYING, force=True, **facts)
    log.info(
        "table %s: batch %s..%s applied to %s.%s: %s",
        settings.table,
        (records[0].get("dynamodb") or {}).get("SequenceNumber") if records else "-",
        (records[-1].get("dynamodb") or {}).get("SequenceNumber") if records else "-",
        settings.database,
        settings.collection,
        json.dumps(counts),
    )
    return {"batchItemFailures": []}
