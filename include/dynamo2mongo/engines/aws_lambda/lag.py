"""What the lag sensor and the monitor read of the Lambda engine: the mapping's state and CloudWatch's IteratorAge."""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.exceptions import ClientError

from dynamo2mongo.aws_errors import error_code
from dynamo2mongo.engines.aws_lambda.settings import LambdaDeployError


def lambda_lag_facts(
    lambda_client: Any,
    cloudwatch: Any,
    function_name: str,
    mapping_uuid: str | None,
    now: dt.datetime,
    window_minutes: int = 5,
) -> dict[str, Any]:
    """The mapping's state and last processing result, and the largest IteratorAge of the last minutes.

    IteratorAge is the age of the last record of each batch the function received: the largest over
    the window bounds how far behind forward sync is. None when there is no datapoint in the window:
    the mapping read nothing, so nothing was waiting.
    """
    if not mapping_uuid:
        raise LambdaDeployError(
            f"no event source mapping of {function_name} is recorded in the migration state: run (or clear) the "
            f"forward-sync deploy task first"
        )
    try:
        mapping = lambda_client.get_event_source_mapping(UUID=mapping_uuid)
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
        raise LambdaDeployError(
            f"the forward-sync event source mapping {mapping_uuid} of {function_name} no longer exists, so no stream "
            f"record is being applied: clear the forward-sync deploy task to create it again"
        ) from None
    statistics = cloudwatch.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="IteratorAge",
        Dimensions=[{"Name": "FunctionName", "Value": function_name}],
        StartTime=now - dt.timedelta(minutes=window_minutes),
        EndTime=now,
        Period=60,
        Statistics=["Maximum"],
    )
    points = [p["Maximum"] for p in statistics.get("Datapoints", []) if p.get("Maximum") is not None]
    return {
        "uuid": mapping_uuid,
        "function_name": function_name,
        "state": mapping.get("State"),
        "state_transition_reason": mapping.get("StateTransitionReason"),
        "last_processing_result": mapping.get("LastProcessingResult"),
        "iterator_age_seconds": max(points) / 1000.0 if points else None,
        "window_minutes": window_minutes,
    }
