"""Every trigger survives the trip through the triggerer's table: serialize(), the stored kwargs, and
the trigger the triggerer builds from them (as the Amazon provider tests its triggers)."""

from __future__ import annotations

import asyncio

import pytest
from airflow.models.trigger import Trigger
from airflow.sdk.module_loading import import_string

from dynamo2mongo.config import parse_config
from dynamo2mongo.sync.lag import LagOutcome
from dynamo2mongo_airflow import triggers
from dynamo2mongo_airflow.dms import DmsTaskRunningTrigger
from dynamo2mongo_airflow.triggers import ExportCompletedTrigger, ForwardLagTrigger

(TABLE,) = parse_config({"tables": [{
    "name": "orders", "source_table": "orders-table", "database": "shop", "collection": "orders",
    "export": {"s3_bucket": "exports"}, "tags": ["wave-1"], "indexes": {"esr_sort_fields": {"by_day": "at"}},
    "sync": {"forward": "lambda"},
}]})
# A run's Param overrides the file: the trigger must carry the resolved value.
RESOLVED = TABLE.with_overrides(**{"sync.lag_threshold_seconds": 7})

TRIGGERS = [
    ExportCompletedTrigger(export_arn="arn:aws:dynamodb:eu-west-1:1:table/t/export/1", estimate="1 GB, ~10 min",
                           waiter_delay=30, waiter_max_attempts=720, aws_conn_id="aws_orders",
                           region_name="eu-west-1"),
    DmsTaskRunningTrigger(replication_task_arn="arn:aws:dms:eu-west-1:1:task:T", waiter_delay=15,
                          waiter_max_attempts=80, aws_conn_id="aws_orders", region_name="eu-west-1",
                          botocore_config={"retries": {"mode": "standard"}}),
    ForwardLagTrigger(config=RESOLVED.as_json()),
]


def _through_the_triggerer(trigger):
    stored = Trigger.from_object(trigger)
    return import_string(stored.classpath)(**stored.kwargs)


@pytest.mark.parametrize("trigger", TRIGGERS, ids=lambda t: type(t).__name__)
def test_serialization_round_trip(trigger):
    classpath, kwargs = trigger.serialize()
    rebuilt = _through_the_triggerer(trigger)
    assert type(rebuilt) is type(trigger)
    assert rebuilt.serialize() == (classpath, kwargs)


def test_the_lag_trigger_carries_the_resolved_configuration():
    rebuilt = _through_the_triggerer(ForwardLagTrigger(config=RESOLVED.as_json()))
    assert rebuilt.config == RESOLVED
    assert rebuilt.config.sync.lag_threshold_seconds == 7


def test_the_lag_trigger_sends_the_domain_outcome_as_the_worker_path_hands_it_over(monkeypatch):
    seen = []

    async def watch_lag(config, log):
        seen.append(config)
        return LagOutcome(True, None, {"lag_seconds": 1.0, "detail": "1.0 s behind", "fatal": None})

    monkeypatch.setattr(triggers, "watch_lag", watch_lag)
    trigger = ForwardLagTrigger(config=RESOLVED.as_json())

    async def events():
        return [event async for event in trigger.run()]

    (event,) = asyncio.run(events())
    assert seen == [RESOLVED]
    assert event.payload == ForwardLagTrigger.event(True, None, {"lag_seconds": 1.0, "detail": "1.0 s behind",
                                                                 "fatal": None})
    assert event.payload == {"status": "success", "message": None,
                             "report": {"lag_seconds": 1.0, "detail": "1.0 s behind", "fatal": None}}
