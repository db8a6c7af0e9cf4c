"""The migration dashboard in headless Chromium, served by a real `airflow api-server` with the plugin.

The metadata database holds what a migration leaves there (phase, per-file results, lag samples of
both directions, a conflict, a quarantined change, a verification report); the test opens the Airflow UI, follows the
"Migrations" entry, reads the dashboard the way a user sees it, and keeps screenshots in
``$D2M_ARTIFACTS`` (default ``.artifacts/``). The API refuses callers without an Airflow login.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from chromium import CHROMIUM
import yaml

from dynamo2mongo.sync.checkpoints import CheckpointStore, Heartbeat
from dynamo2mongo.sync.echo import CONFLICTS
from dynamo2mongo.sync.lag import LagReport
from dynamo2mongo.sync.lag_history import record
from dynamo2mongo.sync.quarantine import Quarantine
from dynamo2mongo.sandbox.main import airflow_env
from dynamo2mongo.state import FILES, StateStore
from dynamo2mongo.finish.verify import VERIFICATIONS

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("D2M_ARTIFACTS", ROOT / ".artifacts"))
# A read-only user: the dashboard is for everyone who may read the migration DAGs.
USERS = {"oncall": "dashboard-test-password"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _seed(meta, name: str) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    state = StateStore(meta, name)
    state.record_export("manual__1", {"export_id": "01700000000000-abcdef12", "item_count": 12_000})
    state.update_migration(phase="forward_caught_up", last_run_id="manual__1", stream={"arn": "arn:stream"},
                           forward_caught_up_at=now - dt.timedelta(hours=1),
                           full_load={"manifest_items": 12_000, "imported": 11_998, "quarantined": 2,
                                      "collection_count": 11_998, "files": 3, "differences": 0})
    for number, items in enumerate((4_000, 4_000, 3_998)):
        meta[FILES].insert_one({"table": name, "export_id": "01700000000000-abcdef12", "data_key": f"data/{number}.ion.gz",
                                "convert_status": "done", "converted_items": items, "imported_items": items,
                                "quarantined": 1 if number < 2 else 0})
    for minutes in range(120, 0, -2):
        at = now - dt.timedelta(minutes=minutes)
        forward = 400.0 if 60 <= minutes <= 70 else 3.0 + (minutes % 7)
        record(meta, name, "forward", LagReport(forward, "behind"), "forward relay", at)
        record(meta, name, "backward", LagReport(None if minutes > 100 else 1.5, "waiting"), "backward relay", at)
    Heartbeat(meta, name, "forward").beat("applying", force=True)
    CheckpointStore(meta, name, "forward").save("shardId-1", stream="arn:stream",
                                                caught_up_at=now - dt.timedelta(seconds=4))
    Heartbeat(meta, name, "backward").beat("applying", force=True, caught_up_at=now)
    meta[CONFLICTS].insert_one({"table": name, "key": {"pk": "order#17", "sk": "v1"}, "policy": "dynamodb_wins",
                                "resolution": "dynamodb", "detail": "both sides changed", "at": now})
    Quarantine(meta, name).put("backward", {"pk": "order#18", "sk": "v2"}, "shipped: Timestamp has no DynamoDB type",
                               {"_id": {"pk": "order#18", "sk": "v2"}}, position={"_data": "82"})
    meta[VERIFICATIONS].insert_one({"_id": {"table": name, "run_id": "manual__1"}, "table": name, "run_id": "manual__1",
                                    "at": now, "mode": "sample", "checked": 600, "differences": 0, "missing": 0,
                                    "extra": 0, "different": 0})


def _seed_halted(meta, name: str) -> None:
    """A rolled-back table whose forward relay stopped and whose backward relay went silent, with lag
    samples from the last few minutes only and a full verification."""
    now = dt.datetime.now(dt.timezone.utc)
    StateStore(meta, name).update_migration(phase="rolled_back", last_run_id="manual__2", stream={"arn": "arn:s2"})
    for seconds in range(600, 0, -15):
        at = now - dt.timedelta(seconds=seconds)
        record(meta, name, "forward", LagReport(2.0, "behind"), "forward relay", at)
    Heartbeat(meta, name, "forward").beat("stopped", force=True)
    CheckpointStore(meta, name, "forward").save("shardId-1", stream="arn:s2", caught_up_at=now - dt.timedelta(hours=2))
    Heartbeat(meta, name, "backward").beat("applying", force=True, caught_up_at=now)
    meta.relays.update_one({"_id": f"{name}/backward"}, {"$set": {"beat_at": now - dt.timedelta(minutes=10)}})
    meta[VERIFICATIONS].insert_one({"_id": {"table": name, "run_id": "manual__2"}, "table": name, "run_id": "manual__2",
                                    "at": now, "mode": "full", "checked": 2_093, "differences": 0, "missing": 0,
                                    "extra": 0, "different": 0})


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, aws_endpoint, mongo_uri, mongo_client, aws_env):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/bootstrap.sh installs Debian's chromium (or set D2M_CHROMIUM)")
    work = tmp_path_factory.mktemp("dashboard")
    suffix = uuid.uuid4().hex[:8]
    name = f"dash_{suffix}"
    meta_name = f"dash_meta_{suffix}"
    document = {
        "defaults": {"metadata_database": meta_name, "export": {"s3_bucket": "unused"}},
        "tables": [{"name": name, "source_table": f"dash-{suffix}", "database": "dash", "collection": "orders",
                    "on_call": {"lag_alert_seconds": 300}},
                   {"name": f"{name}_next", "source_table": f"dash-next-{suffix}", "database": "dash",
                    "collection": "customers"},
                   {"name": f"{name}_halted", "source_table": f"dash-halted-{suffix}", "database": "dash",
                    "collection": "invoices", "sync": {"heartbeat_timeout_seconds": 120}}],
    }
    (work / "tables.yaml").write_text(yaml.safe_dump(document))
    _seed(mongo_client[meta_name], name)
    _seed_halted(mongo_client[meta_name], f"{name}_halted")
    from dynamo2mongo.config import parse_document

    port = _free_port()
    env = airflow_env(dict(os.environ), aws_endpoint, mongo_uri, work / "airflow",
                      parse_document(document).tables[0])
    passwords = work / "passwords.json"
    passwords.write_text(json.dumps(USERS))
    env.update({"D2M_CONFIG": str(work / "tables.yaml"),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "oncall:viewer",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
                "AIRFLOW__API__PORT": str(port)})
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    log = (work / "api-server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port",
                               str(port), "--workers", "1"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=2)
            break
        except (urllib.error.URLError, ConnectionError):
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("api-server did not start:\n" + (work / "api-server.log").read_text()[-4000:])
            time.sleep(1)
    yield {"base": base, "table": name, "log": work / "api-server.log"}
    server.terminate()
    server.wait(30)
    mongo_client.drop_database(meta_name)


def test_the_api_refuses_callers_without_an_airflow_login(airflow):
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{airflow['base']}/dynamo2mongo/api/tables", timeout=10)
    assert refused.value.code == 401
    page = urllib.request.urlopen(f"{airflow['base']}/dynamo2mongo/", timeout=10).read().decode()
    assert "dashboard.js" in page and airflow["table"] not in page, "the page itself carries no data"


def test_the_dashboard_shows_each_table_in_the_airflow_ui(airflow, browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(f"{airflow['base']}/", wait_until="networkidle")
    page.get_by_label("Username").fill("oncall")
    page.get_by_label("Password").fill(USERS["oncall"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("networkidle")
    link = page.get_by_role("link", name="Migrations")
    if not link.count():
        page.get_by_role("button", name="Browse").click()
    page.get_by_text("Migrations", exact=True).first.click()
    page.wait_for_url("**/plugin/dynamo2mongo")
    frame = page.frame_locator("iframe").first
    card = frame.locator(f"section.card[data-table='{airflow['table']}']")
    card.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "dashboard-in-airflow-ui.png"), full_page=True)

    direct = context.new_page()
    direct.on("pageerror", lambda error: problems.append(str(error)))
    direct.goto(f"{airflow['base']}/dynamo2mongo/")
    card = direct.locator(f"section.card[data-table='{airflow['table']}']")
    card.wait_for(timeout=30_000)
    direct.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    assert card.locator("[data-phase]").inner_text() == "forward_caught_up"
    assert "dash-" in card.inner_text() and "dash.orders" in card.inner_text()
    counts = card.locator("dl.counts").inner_text()
    assert "12,000" in counts and "11,998" in counts and "3 / 3" in counts
    assert card.locator(".conflict-count").inner_text() == "1"
    assert "order#17" in card.locator("table.conflicts").inner_text()
    assert card.locator(".quarantine-count").inner_text() == "1"
    quarantined = card.locator("table.quarantine").inner_text()
    assert "order#18" in quarantined and "backward" in quarantined and "Timestamp has no DynamoDB type" in quarantined
    assert "1 change(s) quarantined; every other key keeps syncing" in card.locator(".alert").all_inner_texts()[-1]
    assert "no differences" in card.locator("dl.verification").inner_text()
    assert "600 (sample)" in card.locator("dl.verification").inner_text()
    assert card.locator(".forward-lag").inner_text().endswith(" s")
    assert card.locator(".backward-lag").inner_text().endswith(" s")
    assert card.locator("svg.chart polyline[data-direction='forward']").count() >= 1
    # The backward samples start with 'not measurable' stretches: a gap, then a line.
    assert card.locator("svg.chart polyline[data-direction='backward']").count() >= 1
    assert card.locator("svg.chart .threshold").count() == 1
    other = direct.locator(f"section.card[data-table='{airflow['table']}_next']")
    assert other.locator("[data-phase]").inner_text() == "not started"
    assert "sampled" in card.locator(".verification-kind").inner_text()

    # Honest screens: a stopped or silent relay shows its state, not a lag number; every phase has a colour;
    # a full verification says so; minutes of samples fill the chart instead of a dot at its edge.
    halted = direct.locator(f"section.card[data-table='{airflow['table']}_halted']")
    assert halted.locator("[data-phase]").inner_text() == "rolled_back"
    assert "warn" in halted.locator("[data-phase]").get_attribute("class")
    assert halted.locator(".forward-lag [data-relay]").get_attribute("data-relay") == "stopped"
    assert halted.locator(".forward-lag").inner_text() == "relay stopped"
    assert halted.locator(".backward-lag [data-relay]").get_attribute("data-relay") == "stale"
    assert "stale: no heartbeat for 10." in halted.locator(".backward-lag").inner_text()
    assert halted.locator(".verification-kind").inner_text().startswith("full: every item of both stores, 2,093")
    assert "samples since" in halted.locator("h3", has_text="Lag").inner_text()
    xs = [float(point.split(",")[0]) for point in
          halted.locator("svg.chart polyline[data-direction='forward']").first.get_attribute("points").split()]
    assert min(xs) < 100 and max(xs) > 500, "the samples span the chart, not a dot at its right edge"
    for cell in direct.locator("table.conflicts td, table.quarantine td, table.conflicts th").all():
        style = cell.evaluate("c => getComputedStyle(c).overflowWrap + ' ' + getComputedStyle(c).wordBreak")
        assert style == "break-word normal", style
    halted.screenshot(path=str(ARTIFACTS / "dashboard-halted-relays.png"))

    direct.select_option("#hours", "1")
    direct.wait_for_function(
        "() => document.querySelector('#tables section.card h3:last-of-type') !== null && "
        "[...document.querySelectorAll('h3')].some(h => h.textContent.includes('last 1 h'))")
    direct.screenshot(path=str(ARTIFACTS / "dashboard-last-hour.png"), full_page=True)
    assert problems == [], problems
    for shot in ("dashboard-in-airflow-ui.png", "dashboard.png", "dashboard-last-hour.png"):
        assert (ARTIFACTS / shot).stat().st_size > 10_000, shot
    context.close()
