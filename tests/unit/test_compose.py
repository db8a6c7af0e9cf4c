"""docker-compose.yaml held to the non-Docker sandbox: the same servers, settings, connections and commands.

The stack cannot run here (no Docker engine), so the file is read as data and compared with what
./sandbox.sh does (dynamo2mongo.sandbox.main and .servers) and with the parsers of the commands it
runs. When a compose CLI is on PATH, it validates the file as well.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
import yaml

from dynamo2mongo import cli
from dynamo2mongo.config import load_config
from dynamo2mongo.sandbox import compose_seed, main, moto_server
from dynamo2mongo.sandbox.servers import sandbox_env

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "docker" / "airflow.Dockerfile"
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES = COMPOSE["services"]
AIRFLOW = {
    "airflow-api-server": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}
PROJECT_SERVICES = ("moto", "seed", "relay-forward", "relay-backward", "airflow-init", *AIRFLOW)
PYTHON_MODULE = ["python", "-m"]


def interpolated(value: str) -> str:
    """Compose's ${NAME:-default} with NAME unset."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def env(service: str) -> dict[str, str]:
    return SERVICES[service]["environment"]


def mounts(service: str) -> dict[str, str]:
    """Host directory (relative to the repository) -> where the container sees it."""
    found = {}
    for volume in SERVICES[service].get("volumes", []):
        host, container, *_ = volume.split(":")
        found[host.removeprefix("./")] = container
    return found


def project_root_in_image() -> str:
    (workdir,) = re.findall(r"^WORKDIR\s+(\S+)$", DOCKERFILE.read_text(), re.M)
    return workdir


def the_table():
    """The configured table the stack's seed and relays name (one, as in ./sandbox.sh)."""
    commands = [SERVICES[service]["command"] for service in ("seed", "relay-forward", "relay-backward")]
    (name,) = {command[command.index("--table") + 1] for command in commands}
    tables = {t.name: t for t in load_config(ROOT / "config" / "tables.yaml")}
    assert name in tables, f"the compose stack names table {name!r}, which config/tables.yaml lacks"
    return tables[name]


def test_the_stack_has_its_services():
    assert set(SERVICES) == {"postgres", "mongodb", *PROJECT_SERVICES}
    for service, command in AIRFLOW.items():
        assert SERVICES[service]["command"] == command
    assert SERVICES["airflow-init"]["command"] == ["airflow db migrate && python -m dynamo2mongo pools --apply"]
    assert SERVICES["mongodb"]["image"].startswith("mongo:8")
    assert SERVICES["airflow-api-server"]["ports"] == ["127.0.0.1:8080:8080"]
    assert the_table().dag_id in COMPOSE_FILE.read_text(), "the header should name the DAG to trigger"


def test_airflow_image_is_the_pinned_version():
    (pinned,) = re.findall(r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    (base,) = re.findall(r"^FROM\s+(\S+)$", DOCKERFILE.read_text(), re.M)
    # The lock (and the C extensions the Lambda package copies) are made with this interpreter.
    assert base == f"apache/airflow:{pinned}-python{sys.version_info.major}.{sys.version_info.minor}"
    for service in PROJECT_SERVICES:
        assert SERVICES[service]["build"]["dockerfile"] == DOCKERFILE.relative_to(ROOT).as_posix()
        assert SERVICES[service]["image"].endswith(f":{pinned}")


def test_the_project_is_mounted_where_the_image_installed_it():
    root = project_root_in_image()
    for service in PROJECT_SERVICES:
        assert mounts(service) == {name: f"{root}/{name}" for name in ("include", "dags", "plugins", "config")}
        assert env(service)["D2M_CONFIG"] == f"{root}/config/tables.yaml"


def test_every_process_talks_to_the_sandbox_servers_like_the_sandbox():
    endpoint = urllib.parse.urlsplit(env("moto")["AWS_ENDPOINT_URL"])
    assert endpoint.hostname in SERVICES
    mongo = urllib.parse.urlsplit(env("moto")["MONGO_URI"])
    assert mongo.hostname in SERVICES
    for service in PROJECT_SERVICES:
        assert env(service).items() >= sandbox_env(endpoint.geturl()).items(), service
        assert env(service)["MONGO_URI"] == mongo.geturl(), service

    # The replica set the URI names is the one the mongodb service runs and initiates.
    replica_set = dict(urllib.parse.parse_qsl(mongo.query))["replicaSet"]
    command = SERVICES["mongodb"]["command"]
    assert command[command.index("--replSet") + 1] == replica_set
    assert f"_id: '{replica_set}'" in SERVICES["mongodb"]["healthcheck"]["test"][-1]
    assert f"host: '{mongo.hostname}:{mongo.port or 27017}'" in SERVICES["mongodb"]["healthcheck"]["test"][-1]


def test_moto_server_serves_the_endpoint(monkeypatch):
    command = SERVICES["moto"]["command"]
    assert command[:3] == [*PYTHON_MODULE, moto_server.__name__]
    listened: list[tuple[str, int]] = []

    class Started(Exception):
        pass

    def make_server(host, port, *args, **kwargs):
        listened.append((host, port))
        raise Started

    monkeypatch.setattr(moto_server.moto_export, "install", lambda: None)
    monkeypatch.setattr(moto_server, "make_server", make_server)
    with pytest.raises(Started):
        moto_server.main(command[3:])
    endpoint = urllib.parse.urlsplit(env("moto")["AWS_ENDPOINT_URL"])
    assert listened == [("0.0.0.0", endpoint.port)]
    # The server stops when its stdin closes.
    assert SERVICES["moto"]["stdin_open"] is True


def test_airflow_settings_and_connections_are_the_sandboxs():
    config = the_table()
    root = project_root_in_image()
    for service in ("airflow-init", *AIRFLOW):
        actual = env(service)
        wanted = main.airflow_env(
            sandbox_env(actual["AWS_ENDPOINT_URL"]), actual["AWS_ENDPOINT_URL"], actual["MONGO_URI"], Path("/unused"),
            config,
        )
        # Paths differ by design: the image's project root, and the image's own AIRFLOW_HOME.
        wanted.pop("AIRFLOW_HOME")
        wanted.update(
            AIRFLOW__CORE__DAGS_FOLDER=f"{root}/dags",
            AIRFLOW__CORE__PLUGINS_FOLDER=f"{root}/plugins",
            PYTHONPATH=f"{root}/plugins",
        )
        for key, value in wanted.items():
            if key.startswith("AIRFLOW_CONN_"):
                assert json.loads(actual[key]) == json.loads(value), f"{service}: {key}"
            else:
                assert actual[key] == value, f"{service}: {key}"
        assert {f"AIRFLOW_CONN_{config.aws_conn_id.upper()}", f"AIRFLOW_CONN_{config.mongo_conn_id.upper()}"} <= set(
            actual
        )

        # One metadata database for every component, and tasks reach the API server.
        assert urllib.parse.urlsplit(actual["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname == "postgres"
        api = urllib.parse.urlsplit(actual["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
        assert (api.hostname, api.port) == ("airflow-api-server", 8080)
        assert actual["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_relays_run_the_cli_as_the_sandbox_does(direction, monkeypatch, tmp_path):
    command = SERVICES[f"relay-{direction}"]["command"]
    assert command[:3] == [*PYTHON_MODULE, "dynamo2mongo"]

    parsed = []

    def relay(args):
        parsed.append(args)
        return 0

    monkeypatch.setattr(cli, f"relay_{direction}", relay)
    assert cli.main(command[3:]) == 0
    (args,) = parsed
    assert (args.command, args.direction, args.table) == ("relay", direction, the_table().name)
    assert args.mongo_uri is None and args.config is None, "the URI and the configuration come from the environment"

    started = []
    monkeypatch.setattr(main.subprocess, "Popen", lambda argv, **kwargs: started.append(argv))
    main.start_relay({}, "mongodb://unused", the_table().name, tmp_path / "relay.log", direction)
    (sandbox_command,) = started
    assert command[1:] == sandbox_command[1:]


def test_seed_builds_the_sandbox_table_before_airflow_runs_the_dag():
    command = [interpolated(part) for part in SERVICES["seed"]["command"]]
    assert command[:3] == [*PYTHON_MODULE, compose_seed.__name__]
    args = compose_seed.parse_args(command[3:])
    assert args.table == the_table().name and args.items > 0
    assert SERVICES["seed"]["depends_on"] == {"moto": {"condition": "service_healthy"}}
    assert SERVICES["airflow-scheduler"]["depends_on"]["seed"] == {"condition": "service_completed_successfully"}


def _compose_cli() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_cli_accepts_the_file():
    command = _compose_cli()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    result = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
