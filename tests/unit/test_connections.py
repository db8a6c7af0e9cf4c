"""Every MongoDB client comes from the one factory: TLS-checked against the tables it serves, and
timezone-aware; the Airflow glue's factory reads the connection through the Mongo provider's hook and
hands its URI and options to the domain's."""

from __future__ import annotations

import ast
import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from bson import BSON

from dynamo2mongo import connections
from dynamo2mongo.config import parse_config
from dynamo2mongo.mongo_tls import TlsRequired

ROOT = Path(__file__).resolve().parents[2]
# Where a MongoClient may be made: the two factories, and the Lambda handler, whose package cannot
# import the domain's factory (it reads the table configuration, whose YAML parser is not shipped).
DOMAIN_FACTORY = "include/dynamo2mongo/connections.py"
GLUE_FACTORY = "plugins/dynamo2mongo_airflow/connections.py"
LAMBDA_HANDLER = "include/lambda/handler.py"
PRODUCTION = ("include/dynamo2mongo", "include/lambda", "plugins", "dags")
SANDBOX = "include/dynamo2mongo/sandbox/"


def _table(name: str = "orders", **extra):
    raw = {"name": name, "source_table": name, "database": "shop", "collection": name,
           "export": {"s3_bucket": "b"}, **extra}
    if extra.get("environment") == "aws":
        raw["sync"] = {"forward": "relay", "backward": "relay"}
    return parse_config({"tables": [raw]})[0]


def _calls(name: str) -> list[tuple[str, ast.Call]]:
    found = []
    for source in PRODUCTION:
        for file in sorted((ROOT / source).rglob("*.py")):
            path = file.relative_to(ROOT).as_posix()
            if path.startswith(SANDBOX):
                continue
            for node in ast.walk(ast.parse(file.read_text(), path)):
                if isinstance(node, ast.Call):
                    func = node.func
                    called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                    if called == name:
                        found.append((f"{path}:{node.lineno}", node))
    return found


def test_mongo_clients_are_made_only_by_the_factories():
    places = {where.rsplit(":", 1)[0] for where, _ in _calls("MongoClient")}
    assert places == {DOMAIN_FACTORY, LAMBDA_HANDLER}
    hooks = {where.rsplit(":", 1)[0] for where, _ in _calls("MongoHook")}
    assert hooks == {GLUE_FACTORY}


def test_every_mongo_client_is_tz_aware():
    for where, call in _calls("MongoClient"):
        keywords = {k.arg: k.value for k in call.keywords}
        assert isinstance(keywords.get("tz_aware"), ast.Constant) and keywords["tz_aware"].value is True, where


def test_no_client_is_taken_from_a_mongo_hook():
    # MongoHook.get_conn() gives a naive client that nothing checked for TLS: only AWS hooks give theirs.
    for where, call in _calls("get_conn"):
        receiver = call.func.value
        assert isinstance(receiver, ast.Call) and getattr(receiver.func, "id", None) == "AwsBaseHook", where


def test_a_plain_connection_is_refused_where_tls_is_required():
    with pytest.raises(TlsRequired, match="table 'orders': the MongoDB client through connection 'mongo_default'"):
        connections.mongo_client("mongodb://db.internal:27017", _table(environment="aws"), connect=False)


@pytest.mark.parametrize("uri, options", [
    ("mongodb://db.internal:27017/?tls=true", {}),
    ("mongodb://db.internal:27017", {"tls": True}),
])
def test_tls_by_uri_or_option_is_accepted(uri, options):
    client = connections.mongo_client(uri, _table(environment="aws"), connect=False, **options)
    client.close()


def test_one_table_that_requires_tls_refuses_a_client_shared_with_others():
    with pytest.raises(TlsRequired, match="table 'payments'"):
        connections.mongo_client("mongodb://db.internal:27017", _table(), _table("payments", environment="aws"),
                                 connect=False)
    connections.mongo_client("mongodb://db.internal:27017", _table(), _table("users"), connect=False).close()


def test_clients_return_aware_datetimes():
    client = connections.mongo_client("mongodb://db.internal:27017", _table(), connect=False)
    try:
        options = client.codec_options
        assert options.tz_aware and options.tzinfo in (None, dt.timezone.utc)
        naive_on_the_wire = BSON.encode({"at": dt.datetime(2026, 12, 4, 18, 50, 56, 123000)})
        read = naive_on_the_wire.decode(codec_options=options)["at"]
        assert read.utcoffset() == dt.timedelta(0) and read == dt.datetime(2026, 12, 4, 18, 50, 56, 123000,
                                                                               tzinfo=dt.timezone.utc)
    finally:
        client.close()


# ---- the glue's factory -----------------------------------------------------------------------


@pytest.fixture
def glue(tmp_path, monkeypatch):
    # Airflow reads its home when first imported: never the developer's ~/airflow.
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow_home"))
    from dynamo2mongo_airflow import connections as glue_connections

    def connection(conn_id: str, **extra) -> None:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(
            {"conn_type": "mongo", "host": "db.internal", "port": 27017, "extra": {"connect": False, **extra}}))

    return SimpleNamespace(factory=glue_connections, connection=connection)


def test_glue_clients_come_from_the_domain_factory_checked_and_aware(glue):
    glue.connection("plain_mongo")
    glue.connection("tls_mongo", tls=True, allow_insecure=True)
    with pytest.raises(TlsRequired, match="connection 'plain_mongo'"):
        glue.factory.Connections(_table(environment="aws", mongo_conn_id="plain_mongo")).mongo()
    with glue.factory.Connections(_table(environment="aws", mongo_conn_id="tls_mongo")) as secure:
        client = secure.mongo()
        assert client.codec_options.tz_aware
        assert secure.meta().name == "dynamo2mongo" and secure.state().table == "orders"
    assert glue.factory.mongo_settings(_table(mongo_conn_id="tls_mongo"))[1]["tlsAllowInvalidCertificates"] is True


def test_clients_by_connection_check_every_table_that_shares_one(glue):
    glue.connection("shared_mongo")
    relaxed, strict = _table(mongo_conn_id="shared_mongo"), _table("payments", environment="aws",
                                                                   mongo_conn_id="shared_mongo")
    with glue.factory.clients_by_connection() as client_for:
        client = client_for(relaxed)
        assert client_for(relaxed) is client and client.codec_options.tz_aware
        with pytest.raises(TlsRequired, match="table 'payments'"):
            client_for(strict)
