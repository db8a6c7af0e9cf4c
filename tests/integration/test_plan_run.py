"""A three-table plan on the sandbox: the real DAGs run by ``airflow dags test``, relays beside them.

What ``airflow dags test`` can show: the tasks of one run, in dependency order, against the real
servers; the asset events that the milestone tasks emit and the asset-triggered DAGs that Airflow then
queues for the scheduler (``asset_dag_run_queue``). What it cannot: the scheduler creating the next
wave's run from that queue, pools limiting concurrency (it runs one task at a time and ignores pools),
and the deadline alert (the scheduler notices missed deadlines). The next wave's DAG is therefore run
here by hand after checking it was queued, and the deadline callback is called directly.

``dags test`` also always starts a new run (see continue_run.py): clearing is tested by ``airflow
tasks clear`` on the run, then continue_run.py, which runs the cleared tasks of that same run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest
import yaml
from bson import json_util
from pymongo import MongoClient

from dynamo2mongo.config import parse_document
from dynamo2mongo.fullload.export import manifest
from dynamo2mongo.sandbox import sample
from dynamo2mongo.sandbox.main import airflow_env
from notify_targets import SnsQueue

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ITEMS = 600
# The first wave's run, and the second wave's; `airflow tasks clear` selects runs by logical date.
DATES = {"plan_a": "2025-01-01T00:00:00+00:00", "plan_b": "2025-01-02T00:00:00+00:00"}

AIRFLOW_DB = """
import json
from sqlalchemy import select
from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
from airflow.models.dagrun import DagRun
from airflow.models.pool import Pool
from airflow.utils.session import create_session
with create_session() as session:
    uri = dict(session.execute(select(AssetModel.id, AssetModel.uri)).all())
    print("AIRFLOW_DB " + json.dumps({
        "events": [[uri[e.asset_id], e.source_dag_id, e.source_run_id] for e in session.scalars(select(AssetEvent))],
        "queued": [[q.target_dag_id, uri[q.asset_id]] for q in session.scalars(select(AssetDagRunQueue))],
        "runs": {r.dag_id: r.run_id for r in session.scalars(select(DagRun))},
        "pools": {p.pool: [p.slots, p.include_deferred] for p in session.scalars(select(Pool))},
    }))
"""


class Plan:
    """The configuration, the Airflow environment and the commands the tests run."""

    def __init__(self, work: Path, env: dict[str, str], document: dict, mongo_uri: str, s3, dynamodb):
        self.work = work
        self.env = env
        self.configuration = parse_document(document)
        self.client = MongoClient(mongo_uri, tz_aware=True)
        self.s3 = s3
        self.dynamodb = dynamodb

    def table(self, name):
        return self.configuration.table(name)

    def meta(self, name):
        return self.client[self.table(name).metadata_database]

    def migration(self, name) -> dict:
        return self.meta(name).migrations.find_one({"_id": name}) or {}

    def collection(self, name):
        table = self.table(name)
        return self.client[table.database][table.collection]

    def airflow(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "airflow", *args], env=self.env, capture_output=True,
                                text=True, timeout=900)
        if check:
            assert result.returncode == 0, f"airflow {' '.join(args)}:\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
        return result

    def dags_test(self, name: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.airflow("dags", "test", self.table(name).dag_id, DATES[name], check=check)

    def clear(self, name: str, *options: str) -> None:
        self.airflow("tasks", "clear", self.table(name).dag_id, "-s", DATES[name], "-e", DATES[name], "-y", *options)

    def continue_run(self, name: str) -> None:
        dag_id = self.table(name).dag_id
        log = self.work / f"continue-{name}.log"
        with log.open("w") as out:
            code = subprocess.call([sys.executable, str(Path(__file__).with_name("continue_run.py")), dag_id,
                                    self.airflow_db()["runs"][dag_id]],
                                   env=self.env, stdout=out, stderr=subprocess.STDOUT, timeout=900)
        assert code == 0, f"{log}:\n" + log.read_text()[-6000:]

    def airflow_db(self) -> dict:
        result = subprocess.run([sys.executable, "-c", AIRFLOW_DB], env=self.env, capture_output=True, text=True,
                                check=True)
        (line,) = [line for line in result.stdout.splitlines() if line.startswith("AIRFLOW_DB ")]
        return json.loads(line.removeprefix("AIRFLOW_DB "))

    def exports(self, name: str) -> list[str]:
        """The exports DynamoDB holds for the table (whatever the migration state says)."""
        arn = self.dynamodb.describe_table(TableName=self.table(name).source_table)["Table"]["TableArn"]
        return [e["ExportArn"] for e in self.dynamodb.list_exports(TableArn=arn)["ExportSummaries"]]

    def converted(self, name: str) -> dict[str, str]:
        """When each converted file was written, by data file."""
        export = next(iter(self.migration(name)["exports"].values()))
        return {
            f["data_key"]: str(self.s3.head_object(Bucket=export["bucket"], Key=f["output_key"])["LastModified"])
            for f in self.meta(name).files.find({"table": name, "export_id": export["export_id"],
                                                 "convert_status": "done"})
        }

    def snapshot(self, name: str) -> list[str]:
        return sorted(json_util.dumps(d, sort_keys=True) for d in self.collection(name).find())


@pytest.fixture(scope="module")
def plan(tmp_path_factory, aws_endpoint, mongo_uri, aws_env):
    work = tmp_path_factory.mktemp("planrun")
    suffix = uuid.uuid4().hex[:8]
    sns = SnsQueue(boto3.session.Session(), aws_endpoint)
    document = {
        "defaults": {
            "database": "planrun",
            "metadata_database": f"plan_meta_{suffix}",
            "export": {"s3_bucket": f"planrun-{suffix}", "s3_prefix": "exports", "enable_pitr": True,
                       "poll_seconds": 1},
            "sync": {"lag_poll_seconds": 1, "lag_consecutive_checks": 2, "lag_threshold_seconds": 10},
            # One quick retry, so that a fault outlasting it fails the task within the test's time; no
            # deadline alert, which `airflow dags test` cannot run on Airflow 3.3.2 (apache/airflow#73428).
            "on_call": {"retries": 1, "retry_delay_seconds": 1, "max_retry_delay_seconds": 2,
                        "full_load_deadline_hours": None},
        },
        "pools": {"exports": 1, "imports": 2},
        # Failures of plan_b's tasks are published to a topic the test reads through an SQS queue.
        "monitor": {"notify": [{"kind": "sns", "topic_arn": sns.topic_arn, "region": "us-east-1",
                                "events": ["failure"], "tables": ["plan_b"]}]},
        "plan": {"waves": [["plan_a"], ["plan_b"], {"tables": ["plan_c"], "start_after": "forward_caught_up"}]},
        "tables": [
            {"name": name, "source_table": f"plan-{name[-1]}-{suffix}", "collection": f"{name}_{suffix}"}
            for name in ("plan_a", "plan_b")
        ] + [
            # Never run by `dags test` here, so it keeps the deadline alert, whose callback the test calls.
            {"name": "plan_c", "source_table": f"plan-c-{suffix}", "collection": f"plan_c_{suffix}",
             "on_call": {"full_load_deadline_hours": 12}},
        ],
    }
    path = work / "tables.yaml"
    path.write_text(yaml.safe_dump(document))
    session = boto3.session.Session()
    s3 = session.client("s3", endpoint_url=aws_endpoint)
    dynamodb = session.client("dynamodb", endpoint_url=aws_endpoint)
    s3.create_bucket(Bucket=document["defaults"]["export"]["s3_bucket"])
    configuration = parse_document(document)
    # plan_c never runs here: it only has to be queued at the right moment.
    for name in ("plan_a", "plan_b"):
        source = configuration.table(name).source_table
        sample.create_table(dynamodb, source)
        sample.seed(lambda: session.client("dynamodb", endpoint_url=aws_endpoint), source, ITEMS, workers=4)
    env = airflow_env(dict(os.environ), aws_endpoint, mongo_uri, work / "airflow", configuration.table("plan_a"))
    env["D2M_CONFIG"] = str(path)
    env["MONGO_URI"] = mongo_uri
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "dynamo2mongo", "pools", "--apply"], env=env, check=True, capture_output=True)
    relays = {}
    for name in ("plan_a", "plan_b"):
        for direction in ("forward", "backward"):
            relays[name, direction] = subprocess.Popen(
                [sys.executable, "-m", "dynamo2mongo", "relay", direction, "--table", name],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=(work / f"relay-{name}-{direction}.log").open("w"),
            )
    state = Plan(work, env, document, mongo_uri, s3, dynamodb)
    state.sns = sns
    yield state
    for (name, direction), relay in relays.items():
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(30) == 0, (work / f"relay-{name}-{direction}.log").read_text()[-3000:]
    state.client.close()


def _events(db: dict, uri: str) -> list[list[str]]:
    return [e for e in db["events"] if e[0] == uri]


def test_first_wave_emits_its_milestones_and_queues_only_the_next_wave(plan):
    db = plan.airflow_db()
    assert db["pools"]["dynamo2mongo_exports"] == [1, True]
    assert db["pools"]["dynamo2mongo_imports"] == [2, False]

    plan.dags_test("plan_a")

    assert plan.migration("plan_a")["phase"] == "forward_caught_up"
    assert plan.collection("plan_a").count_documents({}) == ITEMS
    db = plan.airflow_db()
    run_a = db["runs"]["dynamo2mongo__plan_a"]
    assert _events(db, "dynamo2mongo://plan_a/full_load_done") == [
        ["dynamo2mongo://plan_a/full_load_done", "dynamo2mongo__plan_a", run_a]]
    assert len(_events(db, "dynamo2mongo://plan_a/forward_caught_up")) == 1
    # The scheduler would now start plan_b's run; plan_c waits for plan_b.
    assert db["queued"] == [["dynamo2mongo__plan_b", "dynamo2mongo://plan_a/full_load_done"]]
    assert "dynamo2mongo__plan_b" not in db["runs"]


def test_a_cleared_whole_run_resumes_without_a_second_export(plan):
    export_before = plan.migration("plan_a")["exports"]
    converted_before = plan.converted("plan_a")
    snapshot_before = plan.snapshot("plan_a")
    assert len(converted_before) >= 3, "the sandbox export is split into several files"

    plan.clear("plan_a")
    plan.continue_run("plan_a")

    migration = plan.migration("plan_a")
    assert migration["phase"] == "forward_caught_up"
    assert migration["exports"] == export_before
    assert len(plan.exports("plan_a")) == 1, "clearing the run must not start a second export"
    assert plan.converted("plan_a") == converted_before, "converted files must not be converted again"
    assert plan.snapshot("plan_a") == snapshot_before
    # The cleared run reached its milestone again: the event comes again, from the same run.
    db = plan.airflow_db()
    events = _events(db, "dynamo2mongo://plan_a/full_load_done")
    assert [e[2] for e in events] == [db["runs"]["dynamo2mongo__plan_a"]] * 2


def _revoke_a_file_once_exported(plan, name: str, revoked: dict) -> None:
    """Once the export completed, move one data file away: its convert task fails on a missing object."""
    deadline = time.monotonic() + 600
    while plan.migration(name).get("phase") != "exported":
        if time.monotonic() > deadline:
            return
        time.sleep(0.1)
    export = next(iter(plan.migration(name)["exports"].values()))
    bucket = export["bucket"]
    summary = manifest.parse_summary(plan.s3.get_object(Bucket=bucket, Key=export["manifest_key"])["Body"].read())
    files = manifest.parse_files(plan.s3.get_object(Bucket=bucket, Key=summary.manifest_files_key)["Body"].read())
    key = files[-1].data_key
    plan.s3.copy_object(Bucket=bucket, Key=key + ".revoked", CopySource={"Bucket": bucket, "Key": key})
    plan.s3.delete_object(Bucket=bucket, Key=key)
    revoked.update(bucket=bucket, key=key)


def test_a_file_failed_mid_way_is_cleared_and_the_run_ends_like_an_undisturbed_one(plan):
    revoked: dict = {}
    watcher = threading.Thread(target=_revoke_a_file_once_exported, args=(plan, "plan_b", revoked))
    watcher.start()
    failed = plan.dags_test("plan_b", check=False)
    watcher.join()
    assert revoked, "the export never completed"
    assert failed.returncode != 0, "the run should fail while a data file is missing"
    files = {f["data_key"]: f for f in plan.meta("plan_b").files.find({"table": "plan_b"})}
    assert files[revoked["key"]]["convert_status"] == "failed"
    notices = plan.sns.receive(expect=1)
    assert notices, "the failed task's notification never reached the SNS topic"
    assert notices[0]["Subject"].startswith("dynamo2mongo dynamo2mongo__plan_b: load_file.convert")
    assert "failed in run" in notices[0]["Message"] and "/tasks/load_file.convert" in notices[0]["Message"]
    done_before = plan.converted("plan_b")
    assert done_before and revoked["key"] not in done_before, "the other files were converted before the fault"
    assert plan.migration("plan_b")["phase"] == "exported"
    db = plan.airflow_db()
    assert not _events(db, "dynamo2mongo://plan_b/full_load_done")
    assert not [q for q in db["queued"] if q[0] == "dynamo2mongo__plan_c"]

    bucket, key = revoked["bucket"], revoked["key"]
    plan.s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key + ".revoked"})
    plan.s3.delete_object(Bucket=bucket, Key=key + ".revoked")
    # Every file's convert task (Airflow 3.3 matches -t as a substring of the task id) and what follows.
    plan.clear("plan_b", "-t", "load_file.convert", "--downstream")
    plan.continue_run("plan_b")

    migration = plan.migration("plan_b")
    assert migration["phase"] == "forward_caught_up"
    assert migration["full_load"]["imported"] == ITEMS
    assert len(migration["exports"]) == 1 and len(plan.exports("plan_b")) == 1
    converted = plan.converted("plan_b")
    assert {k: converted[k] for k in done_before} == done_before, "files converted before the fault were kept"
    assert revoked["key"] in converted
    # plan_a was migrated undisturbed from the same items: same documents, same metadata.
    assert plan.snapshot("plan_b") == plan.snapshot("plan_a")
    db = plan.airflow_db()
    assert len(_events(db, "dynamo2mongo://plan_b/forward_caught_up")) == 1
    assert ["dynamo2mongo__plan_c", "dynamo2mongo://plan_b/forward_caught_up"] in db["queued"]


def test_status_and_the_deadline_alert(plan):
    def call_deadline(table: str) -> str:
        script = ("import asyncio, sys; from dynamo2mongo_airflow.plan import full_load_at_risk; "
                  "from dynamo2mongo.config import load_configuration; "
                  "config = load_configuration().table(sys.argv[1]).as_json(); "
                  "print('ALERT ' + asyncio.run(full_load_at_risk(config, context={'dag_run': {'run_id': "
                  "'late-run'}, 'deadline': {'deadline_time': '2025-01-01T12:00:00+00:00'}})))")
        result = subprocess.run([sys.executable, "-c", script, table], env=plan.env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        return [line for line in result.stdout.splitlines() if line.startswith("ALERT ")][0]

    assert "no risk" in call_deadline("plan_a")
    assert "table 'plan_c': run late-run has not caught up with the stream 12 h after it was queued" in call_deadline(
        "plan_c")

    def status(*options: str) -> str:
        result = subprocess.run([sys.executable, "-m", "dynamo2mongo", "status", *options], env=plan.env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    rows = json.loads(status("--json"))
    assert [r["table"] for r in rows] == ["plan_a", "plan_b", "plan_c"]
    a, b, c = rows
    assert (a["wave"], a["phase"], a["writer"]) == (1, "forward_caught_up", "dynamodb")
    assert a["last_run_id"] == plan.migration("plan_a")["last_run_id"]
    assert a["forward"]["lag_seconds"] is not None and a["forward"]["lag_seconds"] < 60
    assert b["backward"]["relay_status"] == "applying"
    assert (a["conflicts"], a["alert"]) == (0, None)
    assert (a["verification"]["differences"], a["verification"]["checked"]) == (0, ITEMS)
    assert a["next"] == "cut_over when the application is ready (dynamo2mongo__plan_a__operations)"
    assert (c["wave"], c["phase"], c["next"]) == (3, None, "after wave 2 (plan_b) reaches forward_caught_up")
    assert "has not caught up with the stream" in c["alert"]
    text = status()
    assert text.splitlines()[0].split()[:3] == ["TABLE", "WAVE", "PHASE"]
    assert "! plan_c: table 'plan_c': run late-run has not caught up" in text
