"""Fixtures the integration modules share."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest


@pytest.fixture(scope="module")
def bucket(s3, request):
    """A new S3 bucket for the module's exports, named after the module (test_forward_sync: forward-sync-…)."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    name = f"{module}-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def airflow_tables(tmp_path, monkeypatch, aws_endpoint, mongo_uri):
    """What the Airflow glue reads, private to the test: its own AIRFLOW_HOME, the connections
    ``itest_aws`` and ``itest_mongo``, and ``configure`` to point D2M_CONFIG at a file that lists one
    table (DynamoDB table and collection of the same name)."""
    # Airflow reads its home when first imported: never the developer's ~/airflow.
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow_home"))
    from dynamo2mongo.sandbox.main import mongo_connection

    monkeypatch.setenv(
        "AIRFLOW_CONN_ITEST_AWS",
        json.dumps(
            {"conn_type": "aws", "login": "sandbox", "password": "sandbox", "extra": {"endpoint_url": aws_endpoint}}
        ),
    )
    monkeypatch.setenv("AIRFLOW_CONN_ITEST_MONGO", json.dumps(mongo_connection(mongo_uri)))

    def configure(name: str, database: str, metadata_database: str, defaults: dict | None = None,
                  **settings: Any) -> None:
        table = {"name": name, "source_table": name, "database": database, "collection": name,
                 "metadata_database": metadata_database, "export": {"s3_bucket": "unused"}, **settings}
        config_file = tmp_path / "tables.yaml"
        config_file.write_text(json.dumps({
            "defaults": {"aws_conn_id": "itest_aws", "mongo_conn_id": "itest_mongo", **(defaults or {})},
            "tables": [table],
        }))
        monkeypatch.setenv("D2M_CONFIG", str(config_file))

    return configure


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright, for the browser tests; Playwright gives it a new empty
    profile and its own browser download is never used."""
    from playwright.sync_api import sync_playwright

    from chromium import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
