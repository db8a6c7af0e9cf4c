"""The relay deployment files parse, and the commands they run are real CLI commands."""

import configparser
import subprocess
from pathlib import Path

import yaml

from dynamo2mongo.cli import build_parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
BINARY = "/opt/dynamo2mongo/.venv/bin/dynamo2mongo"


def _parses(argv: list[str]) -> object:
    args = build_parser().parse_args(argv)
    assert args.command == "relay" and callable(args.run), argv
    return args


def test_the_systemd_unit_runs_the_relay_its_instance_names():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(DEPLOY / "systemd" / "dynamo2mongo-relay@.service")
    service = unit["Service"]
    assert service["Restart"] == "always" and service["KillSignal"] == "SIGTERM"
    assert "MONGO_URI" not in service.get("Environment", ""), "the URI (a secret) belongs in the EnvironmentFile"
    command = service["ExecStart"]
    assert BINARY in command
    # systemd's own escapes ($$ -> $, %% -> %, %i -> the instance), then the shell, with printf for the binary.
    shell = command.replace("$$", "$").replace("%%", "%")
    for instance, expected in (("forward-orders", ["relay", "forward", "--table", "orders"]),
                               ("backward-order-items", ["relay", "backward", "--table", "order-items"])):
        line = shell.replace("%i", instance).replace(f"exec {BINARY}", "printf '%s\\n'")
        argv = subprocess.run(["/bin/sh", "-c", line.split(" ", 2)[2].rsplit(" ", 1)[0].strip("'"), instance],
                              capture_output=True, text=True, check=True).stdout.splitlines()
        assert argv == expected, (instance, argv)
        args = _parses(argv)
        assert args.direction == expected[1] and args.table == expected[3]


def test_the_kubernetes_deployments_run_one_relay_each():
    documents = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "relays.yaml").read_text()) if d]
    deployments = [d for d in documents if d["kind"] == "Deployment"]
    assert {d["metadata"]["labels"]["direction"] for d in deployments} == {"forward", "backward"}
    for deployment in deployments:
        spec = deployment["spec"]
        assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate", "one relay per table and direction"
        assert spec["selector"]["matchLabels"] == spec["template"]["metadata"]["labels"]
        (container,) = spec["template"]["spec"]["containers"]
        assert container["command"][0] == "dynamo2mongo"
        args = _parses(container["command"][1:])
        assert args.direction == deployment["metadata"]["labels"]["direction"]
        env = {e["name"]: e for e in container["env"]}
        assert "secretKeyRef" in env["MONGO_URI"]["valueFrom"], "MONGO_URI comes from a Secret"
