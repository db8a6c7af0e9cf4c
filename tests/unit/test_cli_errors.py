"""CLI commands that cannot reach MongoDB or AWS print one line with the endpoint and the fix, exit
non-zero, and give up within a few seconds; never a traceback."""

import os
import socket
import subprocess
import sys
import time

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from pymongo.errors import OperationFailure

from dynamo2mongo.cli_errors import describe, mongo_endpoint, with_timeout


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("command", [["status"], ["quarantine", "list", "--table", "sample_orders"]])
def test_unreachable_mongodb_is_one_line_within_seconds(command):
    uri = f"mongodb://user:secret@127.0.0.1:{_closed_port()}/"
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "dynamo2mongo", "--timeout", "1.5", *command],
                            env={**os.environ, "MONGO_URI": uri}, capture_output=True, text=True,
                            timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "cannot reach MongoDB at mongodb://127.0.0.1:" in lines[0] and "secret" not in lines[0]
    assert elapsed < 15, elapsed


def test_the_timeout_goes_into_the_uri_unless_it_sets_its_own():
    assert with_timeout("mongodb://h:1", 5) == "mongodb://h:1/?serverSelectionTimeoutMS=5000&connectTimeoutMS=5000"
    kept = with_timeout("mongodb+srv://u:p@c.example.net/db?serverSelectionTimeoutMS=900&tls=true", 5)
    assert "serverSelectionTimeoutMS=900" in kept and "connectTimeoutMS=5000" in kept and "/db?" in kept
    assert mongo_endpoint("mongodb+srv://u:p@c.example.net/db?tls=true") == "mongodb+srv://c.example.net"


def test_aws_and_permission_errors_have_their_fix():
    assert "no AWS credentials" in describe(NoCredentialsError())
    assert "cannot reach AWS at https://dynamodb.eu-west-1.amazonaws.com" in describe(
        EndpointConnectionError(endpoint_url="https://dynamodb.eu-west-1.amazonaws.com"))
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "DescribeTable")
    assert "AWS refused DescribeTable" in describe(denied) and "docs/iam/relay-policy.json" in describe(denied)
    auth = OperationFailure("Authentication failed.", code=18, details={"errmsg": "Authentication failed."})
    assert "authentication failed" in describe(auth, "mongodb://u:p@db:27017")
    assert describe(ValueError("x")) is None


def test_aws_clients_of_one_shot_commands_give_up_within_the_timeout_and_relays_keep_botos():
    import argparse

    from dynamo2mongo.cli import _aws
    from dynamo2mongo.config import load_configuration

    table = load_configuration().tables[0]
    once = _aws(argparse.Namespace(command="quarantine", timeout=2.0), table, "dynamodb").meta.config
    assert (once.connect_timeout, once.read_timeout, once.retries["total_max_attempts"]) == (2.0, 2.0, 2)
    relay = _aws(argparse.Namespace(command="relay", timeout=None), table, "dynamodb").meta.config
    assert relay.connect_timeout == 60 and relay.read_timeout == 60
