"""The monitor and the notifiers against real receivers: SNS (into SQS on the moto server), SMTP and a
Slack-webhook HTTP server. Lag breaches and quarantined changes alert once and end once; failures render
the task's facts; an alert that could not be sent is sent by the next run; no credential reaches a
message."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from types import SimpleNamespace

import boto3
import pytest
import yaml

from dynamo2mongo.sync.checkpoints import CheckpointStore, Heartbeat
from dynamo2mongo.sync.lag_history import SAMPLES
from dynamo2mongo.sync.quarantine import Quarantine
from dynamo2mongo.state import StateStore
from notify_targets import SLACK_TOKEN, SlackServer, SmtpServer, SnsQueue

pytestmark = pytest.mark.integration
STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/monitored/stream/2026-01-01T00:00:00.000"


@pytest.fixture
def monitored(aws_env, aws_endpoint, mongo_uri, mongo_client, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow_home"))
    from dynamo2mongo.sandbox.main import mongo_connection

    name = f"mon_{uuid.uuid4().hex[:8]}"
    meta = f"monitor_meta_{uuid.uuid4().hex[:8]}"
    sns = SnsQueue(boto3.session.Session(), aws_endpoint)
    with SmtpServer() as smtp, SlackServer() as slack:
        document = {
            "defaults": {"aws_conn_id": "itest_aws", "mongo_conn_id": "itest_mongo", "metadata_database": meta},
            "tables": [{"name": name, "source_table": f"monitored-{name[4:]}", "database": "monitor_itest",
                        "collection": name, "export": {"s3_bucket": "unused"},
                        "on_call": {"lag_alert_seconds": 60}}],
            "monitor": {"notify": [
                {"kind": "sns", "topic_arn": sns.topic_arn, "aws_conn_id": "itest_aws", "region": "us-east-1"},
                {"kind": "email", "to": ["oncall@example.com"], "smtp_conn_id": "itest_smtp"},
                {"kind": "slack", "slack_webhook_conn_id": "itest_slack", "events": ["lag_breach", "failure"]},
            ]},
        }
        config = tmp_path / "tables.yaml"
        config.write_text(yaml.safe_dump(document))
        monkeypatch.setenv("D2M_CONFIG", str(config))
        monkeypatch.setenv("AIRFLOW_CONN_ITEST_AWS", json.dumps(
            {"conn_type": "aws", "login": "sandbox", "password": "sandbox-secret-key",
             "extra": {"endpoint_url": aws_endpoint, "region_name": "us-east-1"}}))
        monkeypatch.setenv("AIRFLOW_CONN_ITEST_MONGO", json.dumps(mongo_connection(mongo_uri)))
        monkeypatch.setenv("AIRFLOW_CONN_ITEST_SMTP", json.dumps(smtp.connection()))
        monkeypatch.setenv("AIRFLOW_CONN_ITEST_SLACK", json.dumps(slack.connection()))
        yield SimpleNamespace(name=name, meta=mongo_client[meta], sns=sns, smtp=smtp, slack=slack)
    mongo_client.drop_database(meta)


def _forward_lag(meta, name: str, seconds: float) -> None:
    """The forward relay's state as a relay `seconds` behind leaves it."""
    now = dt.datetime.now(dt.timezone.utc)
    StateStore(meta, name).update_migration(phase="forward_caught_up", stream={"arn": STREAM},
                                            forward_caught_up_at=now - dt.timedelta(hours=1))
    Heartbeat(meta, name, "forward").beat("applying", force=True)
    CheckpointStore(meta, name, "forward").save("shardId-1", stream=STREAM,
                                                caught_up_at=now - dt.timedelta(seconds=seconds))


def _run_monitor() -> list[dict]:
    from dynamo2mongo.config import load_configuration
    from dynamo2mongo_airflow.monitor import MonitorLagOperator

    return MonitorLagOperator(task_id="monitor_lag", configuration=load_configuration()).execute({"run_id": "scheduled__1"})


def test_a_lag_breach_alerts_once_on_every_target_and_its_end_once(monitored):
    _forward_lag(monitored.meta, monitored.name, 600)
    first = _run_monitor()
    again = _run_monitor()

    assert [(a["event"], a["direction"]) for a in first] == [("lag_breach", "forward")]
    assert again == [], "an open breach is not alerted twice"
    (envelope,) = monitored.sns.receive()
    assert envelope["Subject"] == f"dynamo2mongo {monitored.name}: forward sync lag breach"
    breach = re.compile(r"forward lag 6\d\d s is above 60 s")
    assert breach.search(envelope["Message"])
    (mail,) = monitored.smtp.messages
    assert mail["To"] == "oncall@example.com" and "lag breach" in mail["Subject"]
    assert breach.search(mail.get_body(("html",)).get_content())
    (post,) = monitored.slack.posts
    assert post["path"] == "/services/" + SLACK_TOKEN
    assert breach.search(post["body"]["text"])

    _forward_lag(monitored.meta, monitored.name, 1)
    recovered = _run_monitor()
    assert [(a["event"], a["direction"]) for a in recovered] == [("lag_recovered", "forward")]
    (envelope,) = monitored.sns.receive()
    assert "lag recovered" in envelope["Subject"] and "was: forward lag 6" in envelope["Message"]
    assert len(monitored.smtp.messages) == 2
    assert len(monitored.slack.posts) == 1, "the Slack target does not hear recoveries"

    samples = list(monitored.meta[SAMPLES].find({"table": monitored.name, "direction": "forward"}).sort("at", 1))
    lags = [s["lag_seconds"] for s in samples]
    assert len(lags) == 3 and lags[0] >= 600 and lags[1] >= 600 and lags[2] < 60
    assert {s["source"] for s in samples} == {"monitor"}
    assert "expire_after_history_days" in monitored.meta[SAMPLES].index_information()


def test_a_quarantined_change_alerts_once_and_an_empty_quarantine_once(monitored):
    quarantine = Quarantine(monitored.meta, monitored.name)
    quarantine.put("backward", {"pk": "x"}, "when: a BSON Date cannot be written: this table's sync.bson_dates is "
                   "reject", {"_id": {"pk": "x"}}, position={"_data": "01"})
    first = _run_monitor()
    assert [(a["event"], a["direction"]) for a in first] == [("quarantine", "backward")]
    assert _run_monitor() == [], "an open quarantine alert is not sent twice"
    (envelope,) = monitored.sns.receive()
    assert envelope["Subject"] == f"dynamo2mongo {monitored.name}: 1 change(s) quarantined"
    assert 'Newest: key {"pk": "x"} (backward): when: a BSON Date cannot be written' in envelope["Message"]
    assert f"dynamo2mongo quarantine list --table {monitored.name}" in envelope["Message"]
    (mail,) = monitored.smtp.messages
    assert "1 backward change(s) could not be written" in mail.get_body(("html",)).get_content()
    assert monitored.slack.posts == [], "the Slack target hears lag breaches and failures only"

    quarantine.resolve("backward", [{"pk": "x"}])
    assert [a["event"] for a in _run_monitor()] == ["quarantine_cleared"]
    (envelope,) = monitored.sns.receive()
    assert "sync quarantine empty again" in envelope["Subject"] and "(was: 0 forward, 1 backward)" in envelope["Message"]
    assert len(monitored.smtp.messages) == 2


def test_a_failed_relay_alerts_even_below_the_threshold(monitored):
    _forward_lag(monitored.meta, monitored.name, 1)
    Heartbeat(monitored.meta, monitored.name, "backward").beat(
        "failed", force=True, error="DynamoDB refused the write: AccessDeniedException")
    alerts = _run_monitor()
    assert [(a["event"], a["direction"]) for a in alerts] == [("lag_breach", "backward")]
    (envelope,) = monitored.sns.receive()
    assert "AccessDeniedException" in envelope["Message"]


def test_an_alert_that_could_not_be_sent_is_sent_by_the_next_run(monitored):
    _forward_lag(monitored.meta, monitored.name, 900)
    monitored.slack.fail = True
    with pytest.raises(RuntimeError, match=r"could not send every notification: slack: "):
        _run_monitor()
    assert StateStore(monitored.meta, monitored.name).document().get("lag_alerts", {}).get("forward") is None

    monitored.slack.fail = False
    alerts = _run_monitor()
    assert [a["event"] for a in alerts] == ["lag_breach"]
    assert len(monitored.slack.posts) == 1
    # At least once: the targets that worked the first time hear it again.
    assert len(monitored.sns.receive(expect=2)) == 2


def test_failure_notifications_render_the_task_and_keep_credentials_out(monitored):
    from airflow.sdk import DAG

    from dynamo2mongo.config import load_configuration
    from dynamo2mongo_airflow.notify import failure_callbacks

    callbacks = failure_callbacks(load_configuration().monitor, monitored.name)
    assert [type(c).__name__ for c in callbacks] == ["SnsNotifier", "SmtpNotifier", "SlackWebhookNotifier"]
    ti = SimpleNamespace(task_id="load_file.convert", map_index=3, try_number=2,
                         log_url="http://airflow.example/dags/d/runs/r/tasks/load_file.convert/mapped/3")
    context = {"dag": DAG(dag_id=f"dynamo2mongo__{monitored.name}", schedule=None), "ti": ti,
               "run_id": "manual__2026-11-25", "exception": ValueError("record 12: {{ not a template }}")}
    for callback in callbacks:
        callback(context)

    (envelope,) = monitored.sns.receive()
    assert envelope["Subject"] == f"dynamo2mongo dynamo2mongo__{monitored.name}: load_file.convert failed"
    text = envelope["Message"]
    assert "load_file.convert[3]" in text and "manual__2026-11-25" in text and "(try 2)" in text
    assert "record 12: {{ not a template }}" in text
    assert ti.log_url in text
    bodies = [text, monitored.smtp.messages[0].get_body(("html",)).get_content(),
              monitored.slack.posts[0]["body"]["text"]]
    for body in bodies:
        assert "load_file.convert" in body
        for secret in ("sandbox-secret-key", SLACK_TOKEN):
            assert secret not in body


def test_the_lambda_engine_is_measured_live_and_one_broken_table_does_not_stop_the_others(mongo_client):
    from dynamo2mongo.config import parse_document
    from dynamo2mongo.sync.lag import LagReport
    from dynamo2mongo.operations.monitor import check

    meta_name = f"monitor_meta_{uuid.uuid4().hex[:8]}"
    tables = [{"name": name, "source_table": f"monitored-{name}", "database": "monitor_itest", "collection": name,
               "export": {"s3_bucket": "unused"}, "metadata_database": meta_name,
               "sync": {"forward": forward}, "on_call": {"lag_alert_seconds": 60}}
              for name, forward in (("broken", "relay"), ("lambda_table", "lambda"))]
    configuration = parse_document({"tables": tables})
    meta = mongo_client[meta_name]
    StateStore(meta, "lambda_table").update_migration(phase="forward_caught_up",
                                                      forward_caught_up_at=dt.datetime.now(dt.timezone.utc))

    def client_for(table):
        if table.name == "broken":
            raise ConnectionError("metadata database unreachable")
        return mongo_client

    measured = []

    def measure_lambda(table):
        measured.append(table.name)
        return LagReport(420.0, "IteratorAge 420.0 s; last processing result: OK")

    try:
        result = check(client_for, configuration, measure_lambda=measure_lambda)
        assert measured == ["lambda_table"]
        assert [(a.table, a.event, a.direction) for a in result.alerts] == [("lambda_table", "lag_breach", "forward")]
        assert result.errors == ["broken: ConnectionError: metadata database unreachable"]
        (sample,) = meta[SAMPLES].find({"table": "lambda_table", "direction": "forward"})
        assert sample["lag_seconds"] == 420.0
        assert StateStore(meta, "lambda_table").document()["forward_lag"]["lag_seconds"] == 420.0
    finally:
        mongo_client.drop_database(meta_name)
