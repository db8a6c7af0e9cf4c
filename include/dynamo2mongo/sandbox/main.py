"""The sandbox's main job: a live migration of the sample table through the real DAG.

Starts a moto server and a MongoDB wire server (or uses $MONGO_URI), seeds the sample table, makes
what a table's Lambda or DMS engine needs in the emulator (``sandbox.engines``), starts the relays
and a writer that keeps changing the table, runs ``airflow dags test`` on the table's DAG (full
load, forward sync, lag sensor), stops the writer, waits for the relay to catch up, verifies both
stores item by item and prints a summary of each phase.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import boto3
from pymongo import MongoClient

from dynamo2mongo.mapping.canonical import canonical_item
from dynamo2mongo.sync.checkpoints import now
from dynamo2mongo.config import TableConfig, default_config_path, load_config
from dynamo2mongo.sync.lag import LagReport, LagWatch, applied_through, relay_lag
from dynamo2mongo.sandbox import sample
from dynamo2mongo.sandbox.engines import provisioned_configuration
from dynamo2mongo.sandbox.servers import mongo_server, moto_server, sandbox_env
from dynamo2mongo.sandbox.terminal import follow, plural
from dynamo2mongo.sandbox.workload import MongoWorkload, Workload
from dynamo2mongo.mapping import document_to_item
from dynamo2mongo.finish.verify import verify, verify_keys

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


def check_sample(collection: Any, count: int, skip: set[int], probes: int = 500) -> int:
    """Compare random migrated documents with the items the seeder wrote (those the writer left alone)."""
    matched = 0
    candidates = [i for i in range(count) if i not in skip]
    for index in random.Random(7).sample(candidates, min(probes, len(candidates))):
        expected = sample.item(index)
        document = collection.find_one({"_id": {"pk": expected["pk"]["S"], "sk": int(expected["sk"]["N"])}})
        if document is None:
            raise SystemExit(f"item {index} ({expected['pk']}, {expected['sk']}) is missing from MongoDB")
        if canonical_item(document_to_item(document)) != canonical_item(expected):
            raise SystemExit(f"item {index} differs after migration:\n  dynamodb: {expected}\n  mongodb:  {document}")
        matched += 1
    return matched


FULL_VERIFY_LIMIT = 20_000


def check_both_sides(dynamodb: Any, config: TableConfig, collection: Any, items: int, workload: Workload) -> Any:
    """Full verification for small tables; else every key the writer touched plus a random sample.

    The emulator scans at a few hundred items a second, so a full scan of the 100,000-item sample
    would take longer than the rest of the run; the keys that sync had to carry are all checked.
    """
    if workload.next_index <= FULL_VERIFY_LIMIT:
        return verify(dynamodb, config.source_table, sample.KEY_ATTRS, collection)
    rng = random.Random(11)
    chosen = set(workload.touched) | set(rng.sample(range(items), 2_000))
    ids = [{"pk": sample.item(i)["pk"]["S"], "sk": i} for i in sorted(chosen)]
    return verify_keys(dynamodb, config.source_table, sample.KEY_ATTRS, collection, ids)


def start_relay(env: dict[str, str], mongo_uri: str, table: str, log: Path, direction: str) -> subprocess.Popen:
    """A relay, as an operator would run it next to Airflow."""
    command = [sys.executable, "-m", "dynamo2mongo", "relay", direction, "--table", table]
    return subprocess.Popen(
        command, env={**env, "MONGO_URI": mongo_uri}, stdout=subprocess.DEVNULL, stderr=log.open("w"),
        start_new_session=True,
    )


def prepare_sources(endpoint: str, config: Any, items: int, work: Path) -> tuple[dict[str, str], Any, float]:
    """The emulated AWS side of a sandbox run: the export bucket, the sample table seeded with
    ``items``, and the engines' prerequisites (Lambda role, DMS instance and roles) for tables that
    use them, in the configuration written to ``work``. Returns the environment (``D2M_CONFIG``
    naming that configuration), the boto3 session and the seconds seeding took."""
    base = {**os.environ, **sandbox_env(endpoint)}
    session = boto3.session.Session(aws_access_key_id=base["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=base["AWS_SECRET_ACCESS_KEY"], region_name=config.region)

    def dynamodb() -> Any:
        return session.client("dynamodb", endpoint_url=endpoint)

    session.client("s3", endpoint_url=endpoint).create_bucket(Bucket=config.export.s3_bucket)
    sample.create_table(dynamodb(), config.source_table)
    seconds = sample.seed(dynamodb, config.source_table, items)
    base["D2M_CONFIG"] = str(provisioned_configuration(
        default_config_path(), lambda service: session.client(service, endpoint_url=endpoint), work / "tables.yaml"))
    return base, session, seconds


def stop_relay(relay: subprocess.Popen, log: Path) -> None:
    if relay.poll() is None:
        relay.send_signal(signal.SIGTERM)
        try:
            relay.wait(30)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait()
    if relay.returncode not in (0, -signal.SIGKILL):
        tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
        raise SystemExit(f"a relay exited with {relay.returncode}; last lines of {log}:\n{tail}")


def wait_caught_up(meta: Any, config: TableConfig, stream_arn: str, relay: subprocess.Popen, timeout: float = 600) -> LagReport:
    """The lag sensor's condition, then every change made before this call applied."""
    writes_stopped = now()
    watch = LagWatch(config.sync.lag_threshold_seconds, config.sync.lag_consecutive_checks)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if relay.poll() is not None:
            raise SystemExit(f"the forward relay exited with {relay.returncode}")
        report = relay_lag(meta, config.name, stream_arn, config.sync.heartbeat_timeout_seconds,
                           config.sync.retention_alarm_hours, now())
        decision = watch.observe(report)
        through = applied_through(meta, config.name, stream_arn)
        if decision == "caught_up" and through is not None and through > writes_stopped:
            return report
        if decision == "failed":
            raise SystemExit(f"forward sync failed: {report.fatal}")
        time.sleep(1)
    raise SystemExit(f"forward sync did not catch up within {timeout:.0f} s")


def run(items: int, keep_servers: bool, writes_per_second: float) -> None:
    (config,) = [t for t in load_config() if t.name == "sample_orders"]
    work = ROOT / ".sandbox"
    work.mkdir(exist_ok=True)
    home = work / "airflow"
    log = work / "sandbox.log"
    relay_logs = {d: work / f"relay-{d}.log" for d in ("forward", "backward")}
    log.write_text("")
    phases: dict[str, float] = {}
    with moto_server() as endpoint, mongo_server() as mongo_uri:
        print(f"moto server {endpoint}; MongoDB {mongo_uri.split('@')[-1]}", flush=True)
        print(f"seeding {items:,} items into {config.source_table} ...", flush=True)
        base, session, phases["seed"] = prepare_sources(endpoint, config, items, work)

        def dynamodb() -> Any:
            return session.client("dynamodb", endpoint_url=endpoint)

        env = airflow_env(base, endpoint, mongo_uri, home, config)
        started = time.monotonic()
        _airflow(env, log, "db", "migrate")
        subprocess.run([sys.executable, "-m", "dynamo2mongo", "pools", "--apply"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        phases["airflow db migrate"] = time.monotonic() - started
        relays = {d: start_relay(base, mongo_uri, config.name, path, d) for d, path in relay_logs.items()}
        relay = relays["forward"]
        workload = Workload(dynamodb(), config.source_table, existing=items, seed=3)
        writer, stop_writing = workload.start(per_second=writes_per_second)
        print(f"running the DAG {config.dag_id} (log: {log}), both relays (logs: {work}/relay-*.log) and a writer "
              f"changing {config.source_table} at ~{writes_per_second:g} writes/s ...", flush=True)
        client = MongoClient(mongo_uri, tz_aware=True)
        try:
            started = time.monotonic()
            with follow(log):
                _airflow(env, log, "dags", "test", config.dag_id)
            phases["dags test (whole DAG)"] = time.monotonic() - started
            stop_writing.set()
            writer.join()
            meta = client[config.metadata_database]
            migration = meta.migrations.find_one({"_id": config.name}) or {}
            started = time.monotonic()
            final_lag = wait_caught_up(meta, config, migration["stream"]["arn"], relay)
            phases["final catch-up after the writer stopped"] = time.monotonic() - started
            collection = client[config.database][config.collection]
            caught_up = phases["final catch-up after the writer stopped"]
            print(f"the writer stopped; forward sync caught up in {caught_up:.1f} s; comparing both stores ...",
                  flush=True)
            started = time.monotonic()
            report = check_both_sides(dynamodb(), config, collection, items, workload)
            phases[f"verify ({report.mode})"] = time.monotonic() - started
            matched = check_sample(collection, items, workload.touched)
            print("backward sync: three documents changed in MongoDB ...", flush=True)
            started = time.monotonic()
            backward_demo = show_backward_sync(dynamodb(), config, client, items)
            phases["backward sync demo"] = time.monotonic() - started
            started = time.monotonic()
            print("cut-over, 300 writes by the new application in MongoDB, rollback (the operations DAG) ...",
                  flush=True)
            operations = run_operations(env, log, config, dynamodb(), client, items, workload)
            phases["cut-over, proving writes, rollback"] = time.monotonic() - started
            started = time.monotonic()
            print("the lag monitor, once ...", flush=True)
            _airflow(env, log, "tasks", "test", "dynamo2mongo__monitor", "monitor_lag")
            phases["lag monitor (dashboard samples, alerts)"] = time.monotonic() - started
        finally:
            stop_writing.set()
            for direction, process in relays.items():
                stop_relay(process, relay_logs[direction])
        run_id = migration.get("last_run_id", "")
        export = (migration.get("exports") or {}).get(run_id.replace(".", "_").replace("$", "_"), {})
        files = list(meta.files.find({"table": config.name, "export_id": export.get("export_id")}))
        beat = meta.relays.find_one({"_id": f"{config.name}/forward"}) or {}
        tasks = _task_durations(env, config.dag_id, run_id)
        failed = [t for t in tasks if t.get("state") != "success"]
        print_summary(config, items, export, files, migration, tasks, phases, report, matched, workload, beat, final_lag)
        print(backward_demo)
        print(operations["text"])
        print(f"phase            {operations['phase']} (the last step was the rollback: DynamoDB is the writer, "
              f"forward sync keeps MongoDB current)")
        client.close()
        if failed or migration.get("phase") != "forward_caught_up" or report.differences or operations["differences"]:
            raise SystemExit(
                f"the migration did not complete: phase {migration.get('phase')}, failed tasks {failed}, "
                f"{report.differences} differences after the full load and forward sync, "
                f"{operations['differences']} after the cut-over and rollback"
            )
        if keep_servers:
            serve_ui(env, work)


def serve_ui(env: dict[str, str], work: Path, port: int = 8080) -> None:
    """Keep the servers up with Airflow's UI and the migration dashboard, until Ctrl-C."""
    ui_env = {**env, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
              "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}"}
    with (work / "api-server.log").open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port",
                                   str(port), "--workers", "1"], env=ui_env, stdout=out, stderr=subprocess.STDOUT)
    print("servers kept running, with a UI to look at the results: no scheduler runs here, so a triggered run "
          "would wait forever (./sandbox.sh --ui runs a whole Airflow).", flush=True)
    print(f"Airflow UI, no login: http://127.0.0.1:{port}/ (Migrations: "
          f"http://127.0.0.1:{port}/plugin/dynamo2mongo, the dashboard alone: http://127.0.0.1:{port}/dynamo2mongo/); "
          f"log {work / 'api-server.log'}. Press Ctrl-C to stop", flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        server.terminate()
        server.wait(30)


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.2)


def show_backward_sync(dynamodb: Any, config: TableConfig, client: Any, items: int) -> str:
    """The new application changes a few documents in MongoDB: they arrive in DynamoDB and do not come back."""
    collection = client[config.database][config.collection]
    meta = client[config.metadata_database]
    indexes = [items // 7, items // 3, items // 2]
    ids = [{"pk": sample.item(i)["pk"]["S"], "sk": i} for i in indexes]
    before = (meta.relays.find_one({"_id": f"{config.name}/forward"}) or {}).get("counts", {})
    time.sleep(3)  # heartbeats are written every two seconds: let the counts settle first
    backward_before = (meta.relays.find_one({"_id": f"{config.name}/backward"}) or {}).get("counts", {})
    for number, document_id in enumerate(ids):
        collection.update_one({"_id": document_id}, {"$set": {"status": f"changed-in-mongodb-{number}"}})
    for number, document_id in enumerate(ids):
        key = {"pk": {"S": document_id["pk"]}, "sk": {"N": str(document_id["sk"])}}
        _wait_for(
            lambda: (dynamodb.get_item(TableName=config.source_table, Key=key, ConsistentRead=True).get("Item") or {})
            .get("status", {}).get("S") == f"changed-in-mongodb-{number}",
            60,
            f"the MongoDB change of {document_id} reaching DynamoDB",
        )
    _wait_for(
        lambda: (meta.relays.find_one({"_id": f"{config.name}/forward"}) or {}).get("counts", {}).get("echoes", 0)
        >= before.get("echoes", 0) + len(ids),
        60,
        "the echoes coming back to forward sync",
    )
    time.sleep(5)
    after = (meta.relays.find_one({"_id": f"{config.name}/forward"}) or {}).get("counts", {})
    backward_after = (meta.relays.find_one({"_id": f"{config.name}/backward"}) or {}).get("counts", {})
    unchanged = all(
        collection.find_one({"_id": i})["status"] == f"changed-in-mongodb-{n}" for n, i in enumerate(ids)
    )
    if not unchanged or backward_after.get("written", 0) != backward_before.get("written", 0) + len(ids):
        raise SystemExit(f"a backward change came back: forward {before} -> {after}; backward {backward_before} -> "
                         f"{backward_after}")
    return (
        f"backward sync    {len(ids):>12}   documents changed in MongoDB arrived in DynamoDB; forward sync met their "
        f"{after.get('echoes', 0) - before.get('echoes', 0)} echoes, which changed nothing in MongoDB (it held them first), and "
        f"backward sync wrote each change once and nothing more (no loop)"
    )


def run_operations(env: dict[str, str], log: Path, config: TableConfig, dynamodb: Any, client: Any, items: int,
                   workload: Workload) -> dict[str, Any]:
    """The operations DAG: cut over, let the new application write MongoDB, roll back; verify each time."""
    ops_dag = f"{config.dag_id}__operations"
    collection = client[config.database][config.collection]
    _airflow(env, log, "dags", "test", ops_dag, "-c", json.dumps({"operation": "cut_over", "confirm": config.name}))
    app = MongoWorkload(collection, sample.KEY_ATTRS, existing=items, seed=5)
    app.run(threading.Event(), per_second=50, max_ops=300)
    _airflow(env, log, "dags", "test", ops_dag, "-c", json.dumps({"operation": "rollback", "confirm": config.name}))
    ids = [{"pk": sample.item(i)["pk"]["S"], "sk": i} for i in sorted(app.touched)]
    ids += [d["_id"] for d in collection.find({"recreated_in": "mongodb"}, {"_id": 1})]
    inserted = [{"pk": sample.item(i)["pk"]["S"], "sk": i} for i in range(items + 1_000_000, app.next_index)]
    report = verify_keys(dynamodb, config.source_table, sample.KEY_ATTRS, collection, ids + inserted)
    phase = (client[config.metadata_database].migrations.find_one({"_id": config.name}) or {}).get("phase")
    ops = ", ".join(f"{n} {k}s" for k, n in sorted(app.ops.items()))
    text = (
        f"operations       cut-over, then {sum(app.ops.values())} writes by the new application ({ops}), then "
        f"rollback; {report.checked:,} keys compared after the rollback: {report.missing} missing, "
        f"{report.extra} extra, {report.different} different"
    )
    return {"text": text, "differences": report.differences + (phase != "rolled_back"), "phase": phase}


def print_summary(config, items, export, files, migration, tasks, phases, report, matched, workload, beat, lag) -> None:
    converted = sum(f.get("converted_items", 0) for f in files)
    imported = sum(f.get("imported_items", 0) for f in files)
    full_load = migration.get("full_load") or {}
    counts = beat.get("counts") or {}
    print()
    print(f"== dynamo2mongo sandbox: {config.source_table} -> {config.database}.{config.collection} ==")
    print(f"items seeded     {items:>12,}")
    print(f"items exported   {export.get('item_count') or 0:>12,}   ({export.get('format')}, {plural(len(files), 'data file')})")
    print(f"items converted  {converted:>12,}   (quarantined {full_load.get('quarantined', 0):,})")
    print(f"items imported   {imported:>12,}")
    ops = ", ".join(f"{n} {k}s" for k, n in sorted(workload.ops.items()))
    print(f"live writes      {sum(workload.ops.values()):>12,}   ({ops}) during the full load and forward sync")
    print(f"forward relay    {counts.get('records', 0):>12,}   stream records: {counts.get('written', 0):,} written, "
          f"{counts.get('deleted', 0):,} deleted, {counts.get('skipped', 0):,} already applied, "
          f"{counts.get('collapsed', 0):,} collapsed")
    print(f"lag at the end   {lag.lag_seconds:>12.1f} s (the DAG's lag sensor passed at "
          f"{(migration.get('forward_lag') or {}).get('lag_seconds', 0):.1f} s, threshold {config.sync.lag_threshold_seconds} s)")
    print(f"sandbox check    {report.checked:>12,}   items compared by the sandbox itself ({report.mode}): "
          f"{report.missing} missing, {report.extra} extra, {report.different} different; {matched} untouched items "
          f"also checked against the generator")
    dag_check = f"sampled {config.verify.sample_fraction:.0%}" if config.verify.sample_fraction else "full"
    print(f"verify task      {'':>12}   the DAG's own check ({dag_check}; its report is on the dashboard)")
    print("timings (s):")
    for name, seconds in phases.items():
        print(f"  {name:<40}{seconds:>9.1f}")
    by_task: dict[str, list[float]] = {}
    for row in tasks:
        by_task.setdefault(row["task_id"], []).append(_seconds(row))
    for task_id, durations in by_task.items():
        label = task_id if len(durations) == 1 else f"{task_id} (x{len(durations)}, sum)"
        print(f"  {label:<40}{sum(durations):>9.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dynamo2mongo.sandbox.main", description=__doc__)
    parser.add_argument("--items", type=int, help="items to seed (default 100000; with --ui 5000)")
    parser.add_argument("--keep-servers", action="store_true", help="keep the servers up after the run")
    parser.add_argument("--writes-per-second", type=float,
                        help="rate of the writer that changes the table during the migration (default 20; with --ui 5)")
    parser.add_argument("--ui", action="store_true",
                        help="run a local Airflow (api-server, scheduler, dag-processor, triggerer) with the relays "
                             "and a writer, and trigger the DAGs from its UI; Ctrl-C stops everything")
    parser.add_argument("--port", type=int, default=8080, help="with --ui: the Airflow UI's port (default 8080)")
    parser.add_argument("--no-writer", action="store_true", help="with --ui: no writer changing the table")
    args = parser.parse_args(argv)
    if args.ui:
        from dynamo2mongo.sandbox.ui import serve

        serve(args.items or 5_000, args.port, not args.no_writer, args.writes_per_second or 5.0)
        return
    run(args.items or 100_000, args.keep_servers, args.writes_per_second or 20.0)


if __name__ == "__main__":
    main()
