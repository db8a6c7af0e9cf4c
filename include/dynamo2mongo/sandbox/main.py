"""The sandbox's main job: a live migration of the sample table through the real DAG.

Starts a moto server and a MongoDB wire server (or uses $MONGO_URI), seeds the sample table, runs
``airflow dags test`` on the table's DAG, checks the result and prints a summary of each phase.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import boto3
from pymongo import MongoClient

from dynamo2mongo.canonical import canonical_item
from dynamo2mongo.config import TableConfig, load_config
from dynamo2mongo.sandbox import sample
from dynamo2mongo.sandbox.servers import mongo_server, moto_server, sandbox_env
from dynamo2mongo.types import document_to_item

ROOT = Path(__file__).resolve().parents[3]


def mongo_connection(uri: str) -> dict[str, Any]:
    """An Airflow ``mongo`` connection (JSON form) for a MongoDB URI, as the Mongo provider's hook reads it."""
    parts = urllib.parse.urlsplit(uri)
    extra: dict[str, Any] = {key: value for key, value in urllib.parse.parse_qsl(parts.query)}
    if parts.scheme == "mongodb+srv":
        extra["srv"] = True
    userinfo, _, hosts = parts.netloc.rpartition("@")
    connection: dict[str, Any] = {"conn_type": "mongo", "host": hosts, "extra": extra}
    if "," not in hosts and ":" in hosts:
        connection["host"], port = hosts.rsplit(":", 1)
        connection["port"] = int(port)
    if userinfo:
        login, _, password = userinfo.partition(":")
        connection["login"] = urllib.parse.unquote(login)
        connection["password"] = urllib.parse.unquote(password)
    if parts.path.strip("/"):
        connection["schema"] = parts.path.strip("/")
    return connection


def airflow_env(base: dict[str, str], endpoint: str, mongo_uri: str, home: Path, config: TableConfig) -> dict[str, str]:
    """Environment for the Airflow CLI: a private AIRFLOW_HOME and the two connections."""
    aws_conn = {
        "conn_type": "aws",
        "extra": {"region_name": config.region, "endpoint_url": endpoint},
        "login": base["AWS_ACCESS_KEY_ID"],
        "password": base["AWS_SECRET_ACCESS_KEY"],
    }
    mongo_conn = mongo_connection(mongo_uri)
    env = dict(base)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            f"AIRFLOW_CONN_{config.aws_conn_id.upper()}": json.dumps(aws_conn),
            f"AIRFLOW_CONN_{config.mongo_conn_id.upper()}": json.dumps(mongo_conn),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "plugins"), base.get("PYTHONPATH")])),
        }
    )
    return env


def _airflow(env: dict[str, str], log: Path, *args: str) -> None:
    with log.open("a") as out:
        out.write(f"\n$ airflow {' '.join(args)}\n")
        out.flush()
        code = subprocess.call([sys.executable, "-m", "airflow", *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-60:])
        raise SystemExit(f"`airflow {' '.join(args)}` failed with exit code {code}; last lines of {log}:\n{tail}")


def _task_durations(env: dict[str, str], dag_id: str, run_id: str) -> list[dict[str, Any]]:
    output = subprocess.run(
        [sys.executable, "-m", "airflow", "tasks", "states-for-dag-run", dag_id, run_id, "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    start = output.find("[")
    return json.loads(output[start:]) if start >= 0 else []


def _seconds(row: dict[str, Any]) -> float:
    from datetime import datetime

    if not row.get("start_date") or not row.get("end_date"):
        return 0.0
    return (datetime.fromisoformat(row["end_date"]) - datetime.fromisoformat(row["start_date"])).total_seconds()


def check_sample(collection: Any, count: int, probes: int = 500) -> int:
    """Compare random migrated documents with the items the seeder wrote; returns how many matched."""
    matched = 0
    for index in random.Random(7).sample(range(count), min(probes, count)):
        expected = sample.item(index)
        document = collection.find_one({"_id": {"pk": expected["pk"]["S"], "sk": int(expected["sk"]["N"])}})
        if document is None:
            raise SystemExit(f"item {index} ({expected['pk']}, {expected['sk']}) is missing from MongoDB")
        if canonical_item(document_to_item(document)) != canonical_item(expected):
            raise SystemExit(f"item {index} differs after migration:\n  dynamodb: {expected}\n  mongodb:  {document}")
        matched += 1
    return matched


def run(items: int, keep_servers: bool) -> None:
    (config,) = [t for t in load_config() if t.name == "sample_orders"]
    work = ROOT / ".sandbox"
    work.mkdir(exist_ok=True)
    home = work / "airflow"
    log = work / "sandbox.log"
    log.write_text("")
    phases: dict[str, float] = {}
    with moto_server() as endpoint, mongo_server() as mongo_uri:
        base = {**os.environ, **sandbox_env(endpoint)}
        session = boto3.session.Session(
            aws_access_key_id=base["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=base["AWS_SECRET_ACCESS_KEY"],
            region_name=config.region,
        )

        def dynamodb() -> Any:
            return session.client("dynamodb", endpoint_url=endpoint)

        print(f"moto server {endpoint}; MongoDB {mongo_uri.split('@')[-1]}", flush=True)
        session.client("s3", endpoint_url=endpoint).create_bucket(Bucket=config.export.s3_bucket)
        sample.create_table(dynamodb(), config.source_table)
        print(f"seeding {items:,} items into {config.source_table} ...", flush=True)
        phases["seed"] = sample.seed(dynamodb, config.source_table, items)

        env = airflow_env(base, endpoint, mongo_uri, home, config)
        started = time.monotonic()
        _airflow(env, log, "db", "migrate")
        phases["airflow db migrate"] = time.monotonic() - started
        print(f"running the DAG {config.dag_id} (log: {log}) ...", flush=True)
        started = time.monotonic()
        _airflow(env, log, "dags", "test", config.dag_id)
        phases["dags test (whole DAG)"] = time.monotonic() - started

        client = MongoClient(mongo_uri)
        meta = client[config.metadata_database]
        migration = meta.migrations.find_one({"_id": config.name}) or {}
        run_id = migration.get("last_run_id", "")
        export = (migration.get("exports") or {}).get(run_id.replace(".", "_").replace("$", "_"), {})
        files = list(meta.files.find({"table": config.name, "export_id": export.get("export_id")}))
        collection = client[config.database][config.collection]
        tasks = _task_durations(env, config.dag_id, run_id)
        failed = [t for t in tasks if t.get("state") != "success"]
        matched = check_sample(collection, items)
        count = collection.count_documents({})
        print_summary(config, items, export, files, migration, tasks, phases, count, matched)
        client.close()
        if failed or migration.get("phase") != "full_load_done" or count != items:
            raise SystemExit(f"the migration did not complete: phase {migration.get('phase')}, failed tasks {failed}")
        if keep_servers:
            print("servers kept running; press Ctrl-C to stop", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass


def print_summary(config, items, export, files, migration, tasks, phases, count, matched) -> None:
    converted = sum(f.get("converted_items", 0) for f in files)
    imported = sum(f.get("imported_items", 0) for f in files)
    full_load = migration.get("full_load") or {}
    print()
    print(f"== dynamo2mongo sandbox: {config.source_table} -> {config.database}.{config.collection} ==")
    print(f"items seeded     {items:>12,}")
    print(f"items exported   {export.get('item_count') or 0:>12,}   ({export.get('format')}, {len(files)} data files)")
    print(f"items converted  {converted:>12,}   (quarantined {full_load.get('quarantined', 0):,})")
    print(f"items imported   {imported:>12,}   (collection holds {count:,}; {matched} random items checked field by field)")
    print("phase timings (s):")
    for name, seconds in phases.items():
        print(f"  {name:<34}{seconds:>9.1f}")
    by_task: dict[str, list[float]] = {}
    for row in tasks:
        by_task.setdefault(row["task_id"], []).append(_seconds(row))
    for task_id, durations in by_task.items():
        label = task_id if len(durations) == 1 else f"{task_id} (x{len(durations)}, sum)"
        print(f"  {label:<34}{sum(durations):>9.1f}")
    print(f"phase: {migration.get('phase')}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dynamo2mongo.sandbox.main", description=__doc__)
    parser.add_argument("--items", type=int, default=100_000, help="items to seed (default 100000)")
    parser.add_argument("--keep-servers", action="store_true", help="keep the servers up after the run")
    args = parser.parse_args(argv)
    run(args.items, args.keep_servers)


if __name__ == "__main__":
    main()
