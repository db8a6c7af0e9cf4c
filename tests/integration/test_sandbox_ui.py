"""``./sandbox.sh --ui`` end to end, in headless Chromium, the way a new user works with it.

Starts the UI sandbox (its own moto server, MongoDB wire server, relays, writer and a real Airflow:
api-server, scheduler with LocalExecutor, dag-processor, triggerer), then in the browser: triggers
the sample table from the trigger form, waits for the run to succeed, opens a mapped convert task's
log and finds its progress line, reads the phase and counts on the Migrations dashboard, clears a
task from the UI and sees it run again, and runs cut_over from the operations form (which
preselects nothing and needs the table's name). Ctrl-C (SIGINT) must then stop everything.
Screenshots land in ``$D2M_ARTIFACTS`` (default ``.artifacts/``), named ``sandbox-ui-*.png``.

About three minutes on two cores; ``./test.sh -m "not ui_sandbox"`` leaves it out.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from chromium import CHROMIUM

from dynamo2mongo.sandbox.ui import READY_LINE

pytestmark = [pytest.mark.integration, pytest.mark.ui_sandbox]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("D2M_ARTIFACTS", ROOT / ".artifacts"))
DAG = "dynamo2mongo__sample_orders"
OPS = f"{DAG}__operations"
ITEMS = 2_000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read().decode())


def _wait(what: str, condition, timeout: float, sandbox=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if sandbox is not None and sandbox["process"].poll() is not None:
            raise AssertionError(f"the sandbox exited while waiting for {what}:\n{''.join(sandbox['lines'][-40:])}")
        time.sleep(2)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s"
                         + (f"; sandbox output:\n{''.join(sandbox['lines'][-40:])}" if sandbox else ""))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/install-chromium.sh installs Debian's chromium (or set D2M_CHROMIUM)")
    port = _free_port()
    work = tmp_path_factory.mktemp("sandbox-ui")
    env = {**os.environ, "D2M_SANDBOX_UI_DIR": str(work)}
    process = subprocess.Popen(
        [sys.executable, "-m", "dynamo2mongo.sandbox.main", "--ui", "--items", str(ITEMS), "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    state = {"process": process, "lines": lines, "base": f"http://127.0.0.1:{port}", "port": port, "work": work}
    try:
        _wait("the UI sandbox's ready line", lambda: any(READY_LINE in line for line in lines), 420, state)
        yield state
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(90)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(10)
        (ARTIFACTS / "sandbox-ui-terminal.txt").parent.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "sandbox-ui-terminal.txt").write_text("".join(lines))


def _latest_run(base: str, dag_id: str) -> dict | None:
    runs = _get(f"{base}/api/v2/dags/{dag_id}/dagRuns?order_by=-run_after&limit=1")["dag_runs"]
    return runs[0] if runs else None


def _finished(base: str, dag_id: str, run_id: str) -> str | None:
    state = _get(f"{base}/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}")["state"]
    return state if state in ("success", "failed") else None


def _task(base: str, dag_id: str, run_id: str, task_id: str) -> dict:
    return _get(f"{base}/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances/{task_id}")


def test_a_new_user_runs_the_migration_from_the_airflow_ui(sandbox, browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = sandbox["base"]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))

    # No login page: the sandbox's every visitor is an admin. The health badges are green.
    health = _get(f"{base}/api/v2/monitor/health")
    assert {health[k]["status"] for k in ("scheduler", "triggerer", "dag_processor")} == {"healthy"}

    # Trigger the table from its trigger form.
    page.goto(f"{base}/dags/{DAG}", wait_until="networkidle")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.locator("[role=dialog][data-state=open]")
    dialog.get_by_text("export_format").wait_for()
    page.screenshot(path=str(ARTIFACTS / "sandbox-ui-trigger-form.png"))
    dialog.get_by_role("button", name="Trigger").click()
    run = _wait("the triggered run", lambda: _latest_run(base, DAG), 60, sandbox)
    assert run["run_type"] == "manual"
    run_id = run["dag_run_id"]
    state = _wait("the migration run to finish", lambda: _finished(base, DAG, run_id), 600, sandbox)
    page.goto(f"{base}/dags/{DAG}/runs/{run_id}", wait_until="networkidle")
    page.screenshot(path=str(ARTIFACTS / "sandbox-ui-grid.png"), full_page=True)
    assert state == "success", "".join(sandbox["lines"][-60:])

    # A mapped convert task's log, in the UI, with its progress line.
    page.goto(f"{base}/dags/{DAG}/runs/{run_id}/tasks/load_file.convert/mapped/0", wait_until="networkidle")
    progress = page.get_by_text("done in").first
    progress.wait_for(timeout=30_000)
    line = progress.inner_text()
    assert "convert exports/sample_orders/" in line and "(100.0%)" in line, line
    page.screenshot(path=str(ARTIFACTS / "sandbox-ui-convert-log.png"), full_page=True)

    # The Migrations dashboard: phase and counts.
    page.goto(f"{base}/dynamo2mongo/", wait_until="networkidle")
    card = page.locator("section.card[data-table='sample_orders']")
    card.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "sandbox-ui-dashboard.png"), full_page=True)
    assert card.locator("[data-phase]").inner_text() == "forward_caught_up"
    counts = dict(re.findall(r"([a-z /]+)\n([\d,/ ]+)", card.locator("dl.counts").inner_text()))
    # The writer inserts items while the export is requested: at least the seeded ones, all imported.
    assert int(counts["exported items"].replace(",", "")) >= ITEMS, counts
    assert counts["imported"] == counts["exported items"] and counts["quarantined"] == "0", counts
    done, total = counts["files converted / imported"].split(" / ")
    assert done == total and int(total) >= 2, counts

    # Clear a task from the UI: it runs again, as try 2.
    page.goto(f"{base}/dags/{DAG}/runs/{run_id}/tasks/verify", wait_until="networkidle")
    page.get_by_role("button", name="Press shift+c to clear").click()
    clear = page.locator("[role=dialog][data-state=open]")
    clear.get_by_role("button", name="Confirm").click()
    again = _wait("verify to run again after the clear",
                  lambda: (lambda ti: ti if ti["try_number"] >= 2 and ti["state"] == "success" else None)(
                      _task(base, DAG, run_id, "verify")), 240, sandbox)
    assert again["try_number"] == 2

    # The operations form: nothing preselected, Trigger disabled until an operation is chosen.
    page.goto(f"{base}/dags/{OPS}", wait_until="networkidle")
    page.get_by_role("button", name="Trigger").first.click()
    form = page.locator("[role=dialog][data-state=open]")
    form.get_by_text("Confirm with the table's name").wait_for()
    submit = form.get_by_test_id("trigger-dag-submit")
    assert submit.is_disabled(), "the operations form must not be submittable without a chosen operation"
    page.screenshot(path=str(ARTIFACTS / "sandbox-ui-operations-form.png"))
    form.get_by_role("combobox").click()
    page.get_by_role("option", name="cut_over").click()
    form.locator("input[name=element_confirm]").fill("sample_orders")
    submit.click()
    ops_run = _wait("the operations run", lambda: _latest_run(base, OPS), 60, sandbox)
    assert ops_run["conf"]["operation"] == "cut_over" and ops_run["conf"]["confirm"] == "sample_orders"
    ops_state = _wait("cut_over to finish", lambda: _finished(base, OPS, ops_run["dag_run_id"]), 300, sandbox)
    assert ops_state == "success", "".join(sandbox["lines"][-60:])
    page.goto(f"{base}/dynamo2mongo/", wait_until="networkidle")
    card = page.locator("section.card[data-table='sample_orders']")
    card.wait_for(timeout=30_000)
    assert card.locator("[data-phase]").inner_text() == "cut_over"
    page.screenshot(path=str(ARTIFACTS / "sandbox-ui-after-cut-over.png"), full_page=True)
    assert problems == [], problems
    context.close()

    # The terminal told the same story.
    output = "".join(sandbox["lines"])
    assert "load_file.convert [" in output and f"{DAG} {run_id}: success" in output
    assert "verify: success" in output and "try 2" in output


def test_ctrl_c_stops_everything(sandbox):
    process = sandbox["process"]
    process.send_signal(signal.SIGINT)
    process.wait(90)
    time.sleep(1)
    output = "".join(sandbox["lines"])
    assert "stopped: Airflow, the writer, the relays and the servers" in output
    for component in ("scheduler", "triggerer", "dag-processor", "api-server"):
        assert f"stopping {component}" in output
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", sandbox["port"])) != 0, "the api-server still listens"
    # Every process the sandbox started inherited D2M_SANDBOX_UI_DIR: none may be left.
    marker = f"D2M_SANDBOX_UI_DIR={sandbox['work']}".encode()
    leftovers = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0"):
                leftovers.append(environ.parent.name)
        except OSError:
            pass
    assert leftovers == [], f"processes left running: {leftovers}"
