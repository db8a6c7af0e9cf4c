"""TLS to MongoDB is required outside the sandbox unless a table opts out; how TLS is read off a client
and off a URI (without resolving SRV records)."""

from __future__ import annotations

import pytest
from pymongo import MongoClient

from dynamo2mongo.config import parse_config
from dynamo2mongo.mongo_tls import TlsRequired, require_tls, require_tls_uri, uri_uses_tls, uses_tls
from dynamo2mongo.prepare.preflight import PreflightReport, check_mongo


def _table(**extra):
    raw = {"name": "orders", "source_table": "orders", "database": "shop", "collection": "orders",
           "export": {"s3_bucket": "b"}, **extra}
    return parse_config({"tables": [raw]})[0]


@pytest.mark.parametrize("environment, mongo_tls, required", [
    ("sandbox", None, False), ("aws", None, True), ("aws", "optional", False), ("sandbox", "required", True),
])
def test_tls_is_required_by_default_outside_the_sandbox(environment, mongo_tls, required):
    extra = {"environment": environment}
    if environment == "aws":
        extra["sync"] = {"forward": "relay", "backward": "relay"}
    if mongo_tls:
        extra["mongo_tls"] = mongo_tls
    assert _table(**extra).tls_required is required


def test_an_unknown_tls_setting_is_a_config_error():
    with pytest.raises(ValueError, match="'mongo_tls' must be one of required, optional"):
        _table(mongo_tls="sometimes")


@pytest.mark.parametrize("uri, tls", [
    ("mongodb+srv://user:pw@cluster0.example.net/?retryWrites=true", True),
    ("mongodb+srv://cluster0.example.net/?tls=false", False),
    ("mongodb://h1,h2/?replicaSet=rs0&ssl=true", True),
    ("mongodb://h1/?TLS=True", True),
    ("mongodb://h1/?tlsCAFile=/etc/ssl/ca.pem", True),
    ("mongodb://h1:27017/", False),
])
def test_uri_tls(uri, tls):
    assert uri_uses_tls(uri) is tls


def test_a_plain_client_is_refused_with_the_fix_and_closed():
    table = _table(environment="aws")
    plain = MongoClient("mongodb://db.internal:27017", connect=False)
    with pytest.raises(TlsRequired, match=r"does not use TLS.*\{\"tls\": true\}.*mongo_tls: optional"):
        require_tls(plain, table)
    secure = MongoClient("mongodb://db.internal:27017", tls=True, connect=False)
    assert uses_tls(secure) and require_tls(secure, table) is secure
    assert require_tls(MongoClient("mongodb://localhost", connect=False), _table()) is not None


def test_the_lambda_uri_must_carry_tls_on_aws():
    table = _table(environment="aws")
    with pytest.raises(TlsRequired, match="URI given to the Lambda function"):
        require_tls_uri("mongodb://user:pw@db.internal:27017/", table)
    assert require_tls_uri("mongodb+srv://user:pw@cluster0.example.net/", table)


def test_preflight_lists_a_plain_connection_as_a_problem_before_touching_the_server():
    report = PreflightReport()
    check_mongo(_table(environment="aws"), MongoClient("mongodb://unreachable.invalid:1", connect=False,
                                                       serverSelectionTimeoutMS=100), report)
    assert len(report.problems) == 1 and "does not use TLS" in report.problems[0]
