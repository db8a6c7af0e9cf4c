"""What a run acts on: the configuration its DAG was built from, the run's Params applied once by the
task and carried to the triggerer in the trigger (nothing reads the configuration file again)."""

import pytest

from dynamo2mongo.config import parse_document

DOCUMENT = {"tables": [{"name": "orders", "source_table": "Orders", "database": "shop", "collection": "orders",
                        "export": {"s3_bucket": "b"}, "sync": {"lag_threshold_seconds": 30}}]}


def test_the_lag_trigger_carries_the_param_overridden_configuration(monkeypatch, tmp_path):
    from airflow.sdk.exceptions import TaskDeferred

    from dynamo2mongo_airflow.sync import ForwardLagSensor
    from dynamo2mongo_airflow.triggers import ForwardLagTrigger

    # Nothing may read the file once the DAG is built.
    monkeypatch.setenv("D2M_CONFIG", str(tmp_path / "absent.yaml"))
    table = parse_document(DOCUMENT).table("orders")
    sensor = ForwardLagSensor(task_id="wait_forward_lag", table=table)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.run(sensor.table_config({"params": {"lag_threshold_seconds": 7}}), {})
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "dynamo2mongo_airflow.triggers.ForwardLagTrigger"
    assert ForwardLagTrigger(**kwargs).config == table.with_overrides(**{"sync.lag_threshold_seconds": 7})
