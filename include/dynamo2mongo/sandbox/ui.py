"""``./sandbox.sh --ui``: a real local Airflow on the embedded sandbox, run from its UI.

Starts the moto server and the MongoDB wire server (or uses $MONGO_URI), seeds the sample table,
starts both sync relays and (unless ``--no-writer``) a writer that keeps changing the table, and
then Airflow itself: ``api-server``, ``scheduler`` (LocalExecutor: every task in a process of its
own, its log in the UI while it runs), ``dag-processor`` and ``triggerer``, on a SQLite metadata
database in ``.sandbox/ui/airflow``. The UI needs no login (``simple_auth_manager_all_admins``).
The terminal prints each run's and task's state changes. Ctrl-C (or SIGTERM) stops everything
this command started, Airflow first, then the writer, the relays and the servers.

Every start is fresh: the emulators keep their data in memory, so the Airflow home of the previous
start (which would name a stream and an export that no longer exist) is removed first.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dynamo2mongo.config import load_config
from dynamo2mongo.sandbox.servers import mongo_server, moto_server
from dynamo2mongo.sandbox.workload import Workload

ROOT = Path(__file__).resolve().parents[3]
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# Tasks of the sample table's DAGs at once: the machine this runs on may have two cores.
PARALLELISM = 4
# Printed once everything is up: tests wait for it.
READY_LINE = "sandbox ui ready"


def ui_env(env: dict[str, str], port: int) -> dict[str, str]:
    """The Airflow settings of the local UI sandbox on top of ``airflow_env``'s."""
    base_url = f"http://127.0.0.1:{port}"
    secret = secrets.token_hex(16)
    return {
        **env,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
        # The sample DAGs are there to be triggered: no "unpause" step before the first run.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # A local sandbox: every visitor is an admin, no login page.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        # Task processes report to the API server's execution API; every component signs with one key.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secret,
        "AIRFLOW__API__SECRET_KEY": secret,
        # A new DAG file shows within seconds; a run's next task starts without a long scheduler nap.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__WEBSERVER__WARN_DEPLOYMENT_EXPOSURE": "False",
    }


@dataclass
class Processes:
    """The children this command started, stopped in the reverse order of their start."""

    logs: Path
    children: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("w")
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        self.children.append((name, process))
        return process

    def exited(self) -> list[tuple[str, int]]:
        return [(name, process.returncode) for name, process in self.children if process.poll() is not None]

    def stop(self, timeout: float = 20.0) -> None:
        for name, process in reversed(self.children):
            if process.poll() is None:
                print(f"stopping {name} ...", flush=True)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, process in reversed(self.children):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop within {timeout:.0f} s: killed", flush=True)
            # Whatever it started (the scheduler's task processes) goes with it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)


def _get(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read().decode())


def wait_healthy(base_url: str, processes: Processes, timeout: float = 180.0) -> None:
    """Until the API server answers and the scheduler, triggerer and dag-processor report healthy."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if processes.exited():
            raise SystemExit(_exited_message(processes))
        try:
            health = _get(f"{base_url}/api/v2/monitor/health")
            states = {name: (health.get(name) or {}).get("status") for name in
                      ("metadatabase", "scheduler", "triggerer", "dag_processor")}
            now = ", ".join(f"{k} {v}" for k, v in states.items())
            if now != last:
                print(f"  health: {now}", flush=True)
                last = now
            if all(value == "healthy" for value in states.values()):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            pass
        time.sleep(1)
    raise SystemExit(f"Airflow did not become healthy within {timeout:.0f} s; logs in {processes.logs}")


def wait_dags(base_url: str, dag_ids: list[str], processes: Processes, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if processes.exited():
            raise SystemExit(_exited_message(processes))
        with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            known = {d["dag_id"] for d in _get(f"{base_url}/api/v2/dags?limit=100")["dags"]}
            if set(dag_ids) <= known:
                return
        time.sleep(1)
    raise SystemExit(f"the DAGs {dag_ids} were not parsed within {timeout:.0f} s; "
                     f"see {processes.logs}/dag-processor.log")


def _exited_message(processes: Processes) -> str:
    lines = []
    for name, code in processes.exited():
        tail = "".join((processes.logs / f"{name}.log").read_text(errors="replace").splitlines(keepends=True)[-20:])
        lines.append(f"{name} exited with {code}; last lines of {processes.logs / (name + '.log')}:\n{tail}")
    return "\n".join(lines)


class RunWatcher:
    """Prints each DAG run's and each task's state changes, as the grid view shows them."""

    def __init__(self, base_url: str, dag_ids: list[str], on_success: Any = None):
        self.base_url = base_url
        self.dag_ids = dag_ids
        self.on_success = on_success
        self.runs: dict[tuple[str, str], str] = {}
        self.tasks: dict[tuple[str, str, str, int], tuple[str, int]] = {}

    def poll(self) -> None:
        for dag_id in self.dag_ids:
            runs = _get(f"{self.base_url}/api/v2/dags/{dag_id}/dagRuns?order_by=-run_after&limit=3")["dag_runs"]
            for run in reversed(runs):
                key = (dag_id, run["dag_run_id"])
                if self.runs.get(key) in ("success", "failed") and run["state"] == self.runs[key]:
                    continue
                self._tasks(dag_id, run["dag_run_id"])
                if self.runs.get(key) != run["state"]:
                    self.runs[key] = run["state"]
                    print(f"[{time.strftime('%H:%M:%S')}] {dag_id} {run['dag_run_id']}: {run['state']}", flush=True)
                    if run["state"] == "success" and self.on_success:
                        self.on_success(dag_id)

    def _tasks(self, dag_id: str, run_id: str) -> None:
        url = f"{self.base_url}/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances?limit=200"
        for ti in _get(url)["task_instances"]:
            key = (dag_id, run_id, ti["task_id"], ti.get("map_index", -1))
            state = ti.get("state") or "none"
            # With the try: a cleared task that ran again between two polls changed nothing else.
            seen = (state, ti.get("try_number", 1))
            if self.tasks.get(key, ("none", 1)) == seen:
                continue
            self.tasks[key] = seen
            label = ti["task_id"]
            if ti.get("map_index", -1) >= 0:
                label += f" [{ti.get('rendered_map_index') or ti['map_index']}]"
            took = f" ({ti['duration']:.1f} s)" if state in ("success", "failed") and ti.get("duration") else ""
            try_number = f", try {ti['try_number']}" if ti.get("try_number", 1) > 1 else ""
            print(f"[{time.strftime('%H:%M:%S')}]   {label}: {state}{took}{try_number}", flush=True)

    def run(self, stop: threading.Event, every: float = 2.0) -> None:
        while not stop.is_set():
            with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError, ValueError, KeyError):
                self.poll()
            stop.wait(every)


def serve(items: int, port: int, writer: bool, writes_per_second: float) -> None:
    from dynamo2mongo.sandbox.main import airflow_env, prepare_sources, start_relay, stop_relay

    (config,) = [t for t in load_config() if t.name == "sample_orders"]
    # $D2M_SANDBOX_UI_DIR: tests keep their Airflow home apart from a user's.
    work = Path(os.environ.get("D2M_SANDBOX_UI_DIR") or ROOT / ".sandbox" / "ui")
    home = work / "airflow"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    logs = work / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    base_url = f"http://127.0.0.1:{port}"
    # Several data files, so the grid shows convert and import mapped per file.
    per_file = max(500, items // 4)
    stop = threading.Event()
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    processes = Processes(logs)
    try:
        with contextlib.ExitStack() as stack:
            print("[1/5] starting the moto server and the MongoDB wire server ...", flush=True)
            endpoint = stack.enter_context(moto_server(export_items_per_file=per_file))
            mongo_uri = stack.enter_context(mongo_server())
            print(f"      moto server {endpoint}; MongoDB {mongo_uri.split('@')[-1]}", flush=True)
            print(f"[2/5] seeding {items:,} items into {config.source_table} ...", flush=True)
            base, session, seconds = prepare_sources(endpoint, config, items, work)

            def dynamodb() -> Any:
                return session.client("dynamodb", endpoint_url=endpoint)

            print(f"      seeded in {seconds:.1f} s", flush=True)
            env = ui_env(airflow_env(base, endpoint, mongo_uri, home, config), port)
            print(f"[3/5] preparing Airflow's metadata database ({home}) ...", flush=True)
            migrate = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env,
                                     capture_output=True, text=True)
            (logs / "db-migrate.log").write_text(migrate.stdout + migrate.stderr)
            if migrate.returncode != 0:
                raise SystemExit(f"`airflow db migrate` failed; see {logs / 'db-migrate.log'}:\n"
                                 f"{migrate.stderr[-3000:]}")
            subprocess.run([sys.executable, "-m", "dynamo2mongo", "pools", "--apply"], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print("[4/5] starting both relays" + (f" and a writer (~{writes_per_second:g} writes/s until the first "
                  "migration run succeeds)" if writer else "") + " ...", flush=True)
            relays: dict[str, subprocess.Popen] = {}
            for direction in ("forward", "backward"):
                relay_log = logs / f"relay-{direction}.log"
                relays[direction] = start_relay(base, mongo_uri, config.name, relay_log, direction)
                stack.callback(_quietly, stop_relay, relays[direction], relay_log)
            stop_writing = threading.Event()
            workload = Workload(dynamodb(), config.source_table, existing=items, seed=3)
            if writer:
                write_thread, stop_writing = workload.start(per_second=writes_per_second)
                stack.callback(write_thread.join, 10)
                stack.callback(stop_writing.set)
            print("[5/5] starting Airflow: " + ", ".join(AIRFLOW_COMPONENTS) + " ...", flush=True)
            stack.callback(processes.stop)
            stack.callback(stop.set)
            # A second Ctrl-C must not cut the stop short and leave processes behind.
            stack.callback(signal.signal, signal.SIGINT, signal.SIG_IGN)
            for component in AIRFLOW_COMPONENTS:
                command = [sys.executable, "-m", "airflow", component]
                if component == "api-server":
                    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
                processes.start(component, command, env)
            wait_healthy(base_url, processes)
            ops_dag = f"{config.dag_id}__operations"
            wait_dags(base_url, [config.dag_id, ops_dag, "dynamo2mongo__monitor"], processes)

            def first_success(dag_id: str) -> None:
                if dag_id == config.dag_id and not stop_writing.is_set():
                    stop_writing.set()
                    print(f"      the writer stopped ({sum(workload.ops.values()):,} writes); cut_over may now be "
                          f"run from {ops_dag}", flush=True)

            watcher = RunWatcher(base_url, [config.dag_id, ops_dag], on_success=first_success)
            threading.Thread(target=watcher.run, args=(stop,), name="run-watcher", daemon=True).start()
            print(
                f"\nAirflow is up, no login needed: {base_url}/\n"
                f"  trigger    {base_url}/dags/{config.dag_id}/trigger  (the table's migration)\n"
                f"  grid       {base_url}/dags/{config.dag_id}/grid  (click a task for its live log)\n"
                f"  operations {base_url}/dags/{ops_dag}/trigger  (status, cut_over, rollback, finish)\n"
                f"  dashboard  {base_url}/plugin/dynamo2mongo  (Browse -> Migrations)\n"
                f"logs: {logs}/ (api-server, scheduler, dag-processor, triggerer, relay-*); task logs: {home}/logs/\n"
                f"Press Ctrl-C to stop everything.\n", flush=True)
            print(READY_LINE, flush=True)
            while True:
                if processes.exited():
                    raise SystemExit(_exited_message(processes))
                for direction, relay in relays.items():
                    if relay.poll() is not None:
                        raise SystemExit(f"the {direction} relay exited with {relay.returncode}; see "
                                         f"{logs / f'relay-{direction}.log'}")
                time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        print("stopped: Airflow, the writer, the relays and the servers", flush=True)


def _quietly(function: Any, *args: Any) -> None:
    """Run a stop step; a relay that exited with an error was reported already."""
    with contextlib.suppress(SystemExit):
        function(*args)
