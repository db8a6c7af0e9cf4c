"""The operators in isolation: the domain and the clients stubbed, so that what is tested is the glue
(what the operator records, skips, retries and hands on), not the domain it delegates to."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from pymongo.errors import AutoReconnect

from dynamo2mongo.config import load_configuration
from dynamo2mongo.errors import Permanent
from dynamo2mongo.state import Migration
from dynamo2mongo_airflow import connections, operators
from dynamo2mongo_airflow.base import OnCallRetryPolicy, TableOperator

TABLE = load_configuration().tables[0]
FILE = {"export_id": "e1", "data_key": "data/1.ion.gz", "etag": "x1", "bucket": "b", "format": "ION", "items": 3}


class FakeState:
    """What the operators write to the migration state, as calls."""

    def __init__(self, files: dict[tuple[str, str], dict[str, Any]] | None = None, migration: dict | None = None):
        self.files = files or {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._migration = Migration(migration or {})

    def file_result(self, export_id: str, data_key: str) -> dict[str, Any] | None:
        return self.files.get((export_id, data_key))

    def record_file(self, export_id: str, data_key: str, **fields: Any) -> None:
        self.calls.append(("record_file", fields))

    def quarantine(self, *args: Any) -> None:
        self.calls.append(("quarantine", {"args": args}))

    def migration(self) -> Migration:
        return self._migration

    def update_migration(self, **fields: Any) -> None:
        self.calls.append(("update_migration", fields))


class FakeClient:
    closed = False

    def close(self) -> None:
        self.closed = True


def _operator(cls: type, state: FakeState, **kwargs: Any) -> Any:
    operator = cls(task_id="t", table=TABLE, **kwargs)
    operator.aws = lambda config, service: SimpleNamespace(service=service)
    operator.state = lambda config: state
    operator.table_key = lambda config, migration: SimpleNamespace(attrs=("pk", "sk"))
    return operator


def _context(**params: Any) -> dict[str, Any]:
    return {"params": params, "run_id": "manual__1"}


def test_convert_skips_a_file_converted_from_the_same_object(monkeypatch):
    state = FakeState({("e1", "data/1.ion.gz"): {"convert_status": "done", "source_etag": "x1",
                                                 "output_key": "out/1.json.gz", "converted_items": 3}})
    monkeypatch.setattr(operators, "convert_file", lambda *a, **k: pytest.fail("converted again"))
    result = _operator(operators.ConvertFileOperator, state, data_file=FILE).execute(_context())
    assert result["output_key"] == "out/1.json.gz" and state.calls == []


def test_convert_records_running_then_done_and_passes_the_params(monkeypatch):
    state, seen = FakeState(), {}

    def convert(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return SimpleNamespace(output_key="out/1.json.gz", items=3, bad_count=0, seconds=0.1)

    monkeypatch.setattr(operators, "convert_file", convert)
    result = _operator(operators.ConvertFileOperator, state, data_file=FILE).execute(_context(accept_quarantined=True))
    assert result["converted_items"] == 3
    assert seen["accept_quarantined"] is True and seen["expected_items"] == 3
    assert [c[1].get("convert_status") for c in state.calls] == ["running", "done"]


def test_convert_records_a_failure_and_lets_a_transient_error_retry(monkeypatch):
    state = FakeState()

    def convert(*args: Any, **kwargs: Any) -> Any:
        raise AutoReconnect("primary stepped down")

    monkeypatch.setattr(operators, "convert_file", convert)
    with pytest.raises(AutoReconnect):
        _operator(operators.ConvertFileOperator, state, data_file=FILE).execute(_context())
    assert [c[1].get("convert_status") for c in state.calls] == ["running", "failed"]


def test_a_permanent_domain_error_fails_the_task_without_retries(monkeypatch):
    class Broken(Permanent, RuntimeError):
        pass

    def convert(*args: Any, **kwargs: Any) -> Any:
        raise Broken("line 7 of data/1.ion.gz is not valid Ion; fix the export")

    monkeypatch.setattr(operators, "convert_file", convert)
    with pytest.raises(AirflowFailException, match="not valid Ion; fix the export"):
        _operator(operators.ConvertFileOperator, FakeState(), data_file=FILE).execute(_context())


def test_the_stream_enabled_by_a_first_try_stays_ours_on_a_retry(monkeypatch):
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/1"
    state = FakeState(migration={"stream": {"arn": arn, "enabled_by_us": True}})
    monkeypatch.setattr(operators, "ensure_stream", lambda client, table: SimpleNamespace(stream_arn=arn, enabled_by_us=False))
    result = _operator(operators.EnableStreamOperator, state).execute(_context())
    assert result == {"stream_arn": arn, "enabled_by_us": True}
    assert state.calls == [("update_migration", {"stream": {"arn": arn, "enabled_by_us": True}})]


def test_the_run_gets_the_params_and_the_client_is_closed_whatever_happens(monkeypatch):
    client, seen = FakeClient(), {}
    # Where the operator's clients are made (dynamo2mongo_airflow.connections.Connections).
    monkeypatch.setattr(connections, "mongo_client", lambda config: client)

    class Probe(TableOperator):
        def run(self, config: Any, context: Any) -> None:
            seen["threshold"] = config.sync.lag_threshold_seconds
            assert self.mongo(config) is client
            raise AutoReconnect("gone")

    with pytest.raises(AutoReconnect):
        Probe(task_id="t", table=TABLE).execute(_context(lag_threshold_seconds=7))
    assert seen["threshold"] == 7 and client.closed


def test_retry_policy_fails_at_once_only_what_cannot_heal():
    class Broken(Permanent, RuntimeError):
        pass

    policy = OnCallRetryPolicy()
    assert policy.evaluate(Broken("fix the table"), 1, 3) != policy.evaluate(AutoReconnect("gone"), 1, 3)
    assert policy.evaluate(AutoReconnect("gone"), 1, 3) == OnCallRetryPolicy().evaluate(RuntimeError("?"), 1, 3)
