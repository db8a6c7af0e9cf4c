"""The real DAG, run by ``airflow dags test`` against the test servers, twice in a row."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest
import yaml
from bson import json_util
from pymongo import MongoClient

from dynamo2mongo.sandbox import sample
from dynamo2mongo.sandbox.main import airflow_env
from dynamo2mongo.config import parse_config

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ITEMS = 600


@pytest.fixture(scope="module")
def migration(tmp_path_factory, aws_endpoint, mongo_uri, aws_env):
    """A config with one table, its Airflow home, and a helper to run the DAG."""
    work = tmp_path_factory.mktemp("dagrun")
    suffix = uuid.uuid4().hex[:8]
    document = {
        "defaults": {"export": {"s3_bucket": f"dagrun-{suffix}", "enable_pitr": True, "poll_seconds": 1}},
        "tables": [
            {
                "name": "itest",
                "source_table": f"dagrun-{suffix}",
                "database": "dagrun",
                "collection": f"orders_{suffix}",
                "metadata_database": f"dagrun_meta_{suffix}",
                "export": {"s3_prefix": "exports", "format": "ION"},
                "sync": {"lag_poll_seconds": 1, "lag_consecutive_checks": 2, "lag_threshold_seconds": 10},
                "on_call": {"full_load_deadline_hours": None},  # `dags test` fails on DAG deadlines (Airflow 3.3.2)
            }
        ],
    }
    path = work / "tables.yaml"
    path.write_text(yaml.safe_dump(document))
    (config,) = parse_config(document)
    session = boto3.session.Session()
    session.client("s3", endpoint_url=aws_endpoint).create_bucket(Bucket=config.export.s3_bucket)
    dynamodb = session.client("dynamodb", endpoint_url=aws_endpoint)
    sample.create_table(dynamodb, config.source_table)
    sample.seed(lambda: session.client("dynamodb", endpoint_url=aws_endpoint), config.source_table, ITEMS, workers=4)
    env = airflow_env(dict(os.environ), aws_endpoint, mongo_uri, work / "airflow", config)
    env["D2M_CONFIG"] = str(path)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)

    def run_dag() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "test", config.dag_id],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )

    # The relays run beside Airflow, as in production; the DAG waits for their heartbeats.
    relays = {}
    for direction in ("forward", "backward"):
        relays[direction] = subprocess.Popen(
            [sys.executable, "-m", "dynamo2mongo", "relay", direction, "--table", config.name],
            env={**env, "MONGO_URI": mongo_uri},
            stdout=subprocess.DEVNULL,
            stderr=(work / f"relay-{direction}.log").open("w"),
        )
    yield config, run_dag
    for direction, relay in relays.items():
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(30) == 0, (work / f"relay-{direction}.log").read_text()[-3000:]


def _snapshot(collection) -> list[str]:
    return sorted(json_util.dumps(d, sort_keys=True) for d in collection.find())


def test_dag_runs_twice_to_the_same_collection(migration, mongo_uri):
    config, run_dag = migration
    client = MongoClient(mongo_uri)
    collection = client[config.database][config.collection]
    snapshots = []
    for attempt in range(2):
        result = run_dag()
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        state = client[config.metadata_database].migrations.find_one({"_id": config.name})
        assert state["phase"] == "forward_caught_up", json.dumps(state, default=str)[:2000]
        assert state["full_load"]["imported"] == ITEMS
        assert state["full_load"]["files"] >= 3, "the sandbox export is split into several files"
        assert collection.count_documents({}) == ITEMS
        snapshots.append(_snapshot(collection))
    assert snapshots[0] == snapshots[1]
    exports = client[config.metadata_database].migrations.find_one({"_id": config.name})["exports"]
    assert len(exports) == 2, "each DAG run makes one export"
    client.close()
