"""The GitHub Actions workflow, read as data: it cannot run here, so its structure is checked against
the documented workflow syntax and against what the suite needs (one job on MongoDB 8 by MONGO_URI,
one on the embedded server, both running the README's test command)."""

from __future__ import annotations

import re
import shlex
import tomllib
import urllib.parse
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
JOBS = WORKFLOW["jobs"]
STEP_KEYS = {"name", "uses", "with", "run", "env", "id", "if", "shell", "working-directory", "timeout-minutes",
             "continue-on-error"}


def _runs(job: dict) -> str:
    return "\n".join(step["run"] for step in job["steps"] if "run" in step)


def _uses(job: dict) -> dict[str, dict]:
    return {step["uses"].split("@")[0]: step.get("with", {}) for step in job["steps"] if "uses" in step}


def test_the_workflow_has_a_trigger_and_two_jobs_on_ubuntu():
    # YAML 1.1 reads the key `on` as true; GitHub reads it as the trigger.
    triggers = WORKFLOW.get("on", WORKFLOW.get(True))
    assert set(triggers) >= {"push", "pull_request"}
    assert WORKFLOW["name"]
    assert set(JOBS) == {"mongodb-8", "embedded"}
    for job in JOBS.values():
        assert job["runs-on"] == "ubuntu-latest"
        assert isinstance(job["timeout-minutes"], int) and job["timeout-minutes"] > 15


def test_every_step_is_either_an_action_pinned_to_a_version_or_a_command():
    for job in JOBS.values():
        assert job["steps"], "a job needs steps"
        for step in job["steps"]:
            assert set(step) <= STEP_KEYS, step
            assert ("uses" in step) != ("run" in step), step
            if "uses" in step:
                assert re.fullmatch(r"[\w-]+/[\w-]+@v\d+", step["uses"]), step["uses"]
            if "with" in step:
                assert "uses" in step and all(isinstance(v, str) for v in step["with"].values()), step


def test_both_jobs_set_up_the_project_toolchain_and_run_the_test_command():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for job in JOBS.values():
        actions = _uses(job)
        assert job["steps"][0]["uses"].startswith("actions/checkout@")
        assert f">={actions['actions/setup-python']['python-version']}" in project["requires-python"]
        assert actions["actions/setup-java"]["java-version"] == "17"
        assert job["steps"][-1] == {"run": "./test.sh"}, "the README's test command, last"
        assert Path(job["env"]["D2M_CHROMIUM"]).name in {"chromium", "google-chrome"}


def test_the_mongodb_job_points_the_suite_at_a_mongodb_8_single_node_replica_set():
    job = JOBS["mongodb-8"]
    uri = urllib.parse.urlsplit(job["env"]["MONGO_URI"])
    options = dict(urllib.parse.parse_qsl(uri.query))
    assert uri.scheme == "mongodb" and uri.port == 27017
    assert options["directConnection"] == "true"
    script = _runs(job)
    [start] = [line for line in script.splitlines() if line.strip().startswith("docker run")]
    words = shlex.split(start)
    image = next(word for word in words if word.startswith("mongo:"))
    assert image == "mongo:8"
    assert words[words.index("--replSet") + 1] == options["replicaSet"]
    assert "27017:27017" in words
    initiate = re.search(r"rs\.initiate\(\{_id: '(\w+)', members: \[\{_id: 0, host: '([\d.:]+)'\}\]\}\)", script)
    assert initiate and initiate.groups() == (options["replicaSet"], uri.netloc)
    assert "isWritablePrimary" in script, "the suite starts only once the member is primary"


def test_the_embedded_job_uses_the_sandbox_server():
    assert "MONGO_URI" not in JOBS["embedded"].get("env", {})
    assert "MONGO_URI" not in WORKFLOW.get("env", {})
