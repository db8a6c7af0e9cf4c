"""Shared set-up for the sync tests: a migrated table (full load done) and a relay process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from dynamo2mongo.sync.checkpoints import now
from dynamo2mongo.config import TableConfig, parse_config
from dynamo2mongo.fullload.convert import convert_file
from dynamo2mongo.fullload.export import manifest
from dynamo2mongo.fullload.export.request import client_token, completed_export, ensure_pitr, start_export
from dynamo2mongo.sync.lag import LagWatch, relay_drained
from dynamo2mongo.fullload.load import import_file
from dynamo2mongo.sandbox import sample
from dynamo2mongo.state import StateStore
from dynamo2mongo.prepare.stream import ensure_stream
from dynamo2mongo.prepare.table import describe_table


def table_config(tmp_path: Path, bucket: str, **sync: Any) -> tuple[TableConfig, Path]:
    suffix = uuid.uuid4().hex[:8]
    document = {
        "tables": [
            {
                "name": f"sync_{suffix}",
                "source_table": f"sync-{suffix}",
                "database": "sync",
                "collection": f"c_{suffix}",
                "metadata_database": f"sync_meta_{suffix}",
                "export": {"s3_bucket": bucket, "s3_prefix": "exports", "enable_pitr": True},
                "sync": {"batch_size": 100, "lag_threshold_seconds": 3, "lag_consecutive_checks": 2, **sync},
            }
        ]
    }
    path = tmp_path / f"tables-{suffix}.yaml"
    path.write_text(yaml.safe_dump(document))
    (config,) = parse_config(document)
    return config, path


def create_source(dynamodb: Any, config: TableConfig, items: int) -> str:
    """The sample table with its stream on (before any item, as the DAG does), seeded."""
    sample.create_table(dynamodb, config.source_table)
    stream = ensure_stream(dynamodb, config.source_table).stream_arn
    sample.seed(lambda: dynamodb, config.source_table, items, workers=2)
    return stream


def full_load(dynamodb: Any, s3: Any, mongo: Any, config: TableConfig, stream_arn: str) -> int:
    """Export, convert, import and mark the full load done, as the DAG's tasks do."""
    ensure_pitr(dynamodb, config.source_table, allow_enable=True)
    table = describe_table(dynamodb, config.source_table)
    info = start_export(dynamodb, table.arn, config.export.s3_bucket, config.export.s3_prefix,
                        config.export.format, client_token("test", uuid.uuid4().hex))
    for _ in range(600):
        if dynamodb.describe_export(ExportArn=info.arn)["ExportDescription"]["ExportStatus"] != "IN_PROGRESS":
            break
        time.sleep(0.1)
    info = completed_export(dynamodb, info.arn)
    bucket = config.export.s3_bucket
    summary = manifest.parse_summary(s3.get_object(Bucket=bucket, Key=info.manifest_key)["Body"].read())
    files = manifest.parse_files(s3.get_object(Bucket=bucket, Key=summary.manifest_files_key)["Body"].read())
    collection = mongo[config.database][config.collection]
    imported = 0
    for data in files:
        result = convert_file(s3, bucket, data.data_key, manifest.reader_for(summary.output_format), table.key_attrs,
                              quarantine=lambda bad: None)
        imported += import_file(s3, bucket, result.output_key, collection, guard_newer=False).applied
    state = StateStore(mongo[config.metadata_database], config.name)
    state.update_migration(phase="full_load_done", stream={"arn": stream_arn, "enabled_by_us": True},
                           source=table.summary())
    return imported


def start_relay(config_path: Path, config: TableConfig, env: dict[str, str], mongo_uri: str,
                log_path: Path, direction: str = "forward") -> subprocess.Popen:
    # D2M_RELAY_DEBUG=1 logs every key's decision to the relay's log (tmp_path/relay-*.log).
    debug = ["--log-level", "debug"] if os.environ.get("D2M_RELAY_DEBUG") else []
    command = [sys.executable, "-m", "dynamo2mongo", *debug, "--config", str(config_path), "relay", direction,
               "--table", config.name] + (["--poll-seconds", "0.2"] if direction == "forward" else [])
    return subprocess.Popen(command, env={**env, "MONGO_URI": mongo_uri}, stdout=subprocess.DEVNULL,
                            stderr=log_path.open("ab"))


def wait_caught_up(mongo: Any, config: TableConfig, stream_arn: str, timeout: float = 120.0,
                   relay: subprocess.Popen | None = None, log_path: Path | None = None) -> None:
    """The lag sensor's condition, then every change made before this call applied."""
    writes_stopped = now()
    meta = mongo[config.metadata_database]
    watch = LagWatch(config.sync.lag_threshold_seconds, config.sync.lag_consecutive_checks)
    deadline = time.monotonic() + timeout
    report = None
    while time.monotonic() < deadline:
        if relay is not None and relay.poll() is not None:
            raise AssertionError(f"the relay exited with {relay.returncode}: {log_path.read_text()[-3000:] if log_path else ''}")
        decision, report = relay_drained(meta, config.name, stream_arn, config.sync, watch, writes_stopped, now())
        if decision == "caught_up":
            return
        assert decision != "failed", report.fatal
        time.sleep(0.3)
    raise AssertionError(f"forward sync did not catch up in {timeout:.0f}s: {report.as_dict() if report else None}")


def relay_env(aws_env: dict[str, str]) -> dict[str, str]:
    env = dict(aws_env)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("MONGO_URI", None)
    return {k: v for k, v in env.items() if k != "PYTEST_CURRENT_TEST"} | {"PATH": os.environ.get("PATH", "")}
