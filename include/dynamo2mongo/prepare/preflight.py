"""Checks before anything changes: every problem found is reported at once, each with its fix."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from bson import Timestamp
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from dynamo2mongo.sync.events import ensure_images
from dynamo2mongo.config import TableConfig
from dynamo2mongo.mongo_tls import tls_problem
from dynamo2mongo.prepare.stream import view_problem
from dynamo2mongo.prepare.table import TableDescription, describe_table
from dynamo2mongo.errors import Permanent

log = logging.getLogger(__name__)

# DynamoDB Streams keep records for 24 hours; the full load must end well inside that.
STREAM_RETENTION_HOURS = 24


class PreflightFailed(Permanent, RuntimeError):
    def __init__(self, table: str, problems: list[str]):
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"preflight of {table!r} found {len(problems)} problem(s):\n{listing}")


@dataclass
class PreflightReport:
    table: dict[str, Any] = field(default_factory=dict)
    mongo: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _aws_error(error: Exception) -> str:
    if isinstance(error, ClientError):
        return f"{error.response['Error']['Code']}: {error.response['Error'].get('Message', '')}"
    return str(error)


def check_source(config: TableConfig, dynamodb: Any, s3: Any, report: PreflightReport) -> TableDescription | None:
    try:
        table = describe_table(dynamodb, config.source_table)
    except (ClientError, BotoCoreError) as error:
        report.problems.append(
            f"cannot describe DynamoDB table {config.source_table!r} in {config.region} ({_aws_error(error)}): "
            f"check the table name, the region and dynamodb:DescribeTable / DescribeContinuousBackups permissions "
            f"of connection {config.aws_conn_id!r}"
        )
        return None
    report.table = table.summary()
    if table.status != "ACTIVE":
        report.problems.append(f"table {table.name!r} is {table.status}; wait until it is ACTIVE")
    problem = view_problem(table.name, table.stream_view_type) if table.stream_enabled else None
    if problem:
        report.problems.append(problem)
    if not table.pitr_enabled and not config.export.enable_pitr:
        report.problems.append(
            f"point-in-time recovery is off on {table.name!r}: turn it on, or set export.enable_pitr: true "
            f"for table {config.name!r} so the export step may do it"
        )
    bucket, prefix = config.export.s3_bucket, config.export.s3_prefix
    probe = f"{prefix}/_dynamo2mongo_preflight/{uuid.uuid4().hex}"
    try:
        s3.put_object(Bucket=bucket, Key=probe, Body=b"")
        s3.delete_object(Bucket=bucket, Key=probe)
    except (ClientError, BotoCoreError) as error:
        report.problems.append(
            f"cannot write to s3://{bucket}/{prefix}/ ({_aws_error(error)}): the export and the converted files "
            f"go there; create the bucket or grant s3:PutObject, s3:GetObject, s3:DeleteObject"
        )
    gib = table.size_bytes / 2**30
    if gib > 500:
        report.warnings.append(
            f"table is {gib:,.0f} GiB: make sure convert and import can finish inside the stream's "
            f"{STREAM_RETENTION_HOURS} h retention (raise worker slots / pool sizes)"
        )
    return table


def check_mongo(config: TableConfig, client: MongoClient, report: PreflightReport) -> None:
    problem = tls_problem(client, config)
    if problem:
        report.problems.append(problem)
        return
    try:
        client.admin.command("ping")
    except PyMongoError as error:
        report.problems.append(
            f"cannot reach MongoDB through connection {config.mongo_conn_id!r} ({error}): check host, "
            f"credentials, TLS and network access"
        )
        return
    # The driver's own handshake already learnt the topology; asking it works on every server.
    topology = client.topology_description
    servers = list(topology.server_descriptions().values())
    report.mongo = {
        "topology": topology.topology_type_name,
        "replica_set": next((s.replica_set_name for s in servers if s.replica_set_name), None),
        "max_wire_version": max((s.max_wire_version or 0 for s in servers), default=None),
    }
    target = client[config.database][config.collection]
    try:
        # An explicit start time: without it PyMongo requires the server to report operationTime,
        # which mongo-java-server (the sandbox's server) does not.
        with target.watch(max_await_time_ms=50, start_at_operation_time=Timestamp(int(time.time()), 0)) as stream:
            stream.try_next()
        report.mongo["change_streams"] = True
    except OperationFailure as error:
        report.mongo["change_streams"] = False
        report.problems.append(
            f"MongoDB does not offer change streams ({error.details.get('errmsg', error) if error.details else error}): "
            f"backward sync needs a replica set or sharded cluster (a standalone mongod can be started as a "
            f"single-node replica set)"
        )
    if report.mongo["change_streams"]:
        problem = ensure_images(target)
        report.mongo["exact_change_images"] = problem is None
        if problem:
            report.warnings.append(problem)
    for database in (config.database, config.metadata_database):
        probe = client[database]["_dynamo2mongo_preflight"]
        try:
            probe.insert_one({"_id": uuid.uuid4().hex})
            probe.drop()
        except PyMongoError as error:
            report.problems.append(
                f"cannot write to MongoDB database {database!r} ({error}): grant readWrite on it to the "
                f"user of connection {config.mongo_conn_id!r}"
            )
    try:
        present = target.estimated_document_count()
    except PyMongoError:
        present = 0
    if present:
        report.warnings.append(
            f"{config.database}.{config.collection} already holds {present:,} documents: documents with the "
            f"same primary key are replaced by the import, others are kept"
        )
    report.mongo["documents_present"] = present


def run_preflight(config: TableConfig, dynamodb: Any, s3: Any, mongo: MongoClient) -> PreflightReport:
    """All checks; raise PreflightFailed listing every problem, else return the facts found."""
    report = PreflightReport()
    check_source(config, dynamodb, s3, report)
    check_mongo(config, mongo, report)
    for warning in report.warnings:
        log.warning("preflight %s: %s", config.name, warning)
    if report.problems:
        raise PreflightFailed(config.name, report.problems)
    return report
