"""The event source mapping from the table's stream to the function: found, updated where its
settings differ, or created reading from TRIM_HORIZON.

Lambda refuses an update while a mapping is in a transition; the wait for it to settle is the
``EventSourceMappingSettled`` waiter in ``waiters.json``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import WaiterError
from botocore.waiter import create_waiter_with_client

from dynamo2mongo.engines.aws_lambda.settings import LambdaDeployError
from dynamo2mongo.engines.waiters import timed_out, waiter_model

if TYPE_CHECKING:
    from dynamo2mongo.config import TableConfig

STARTING_POSITION = "TRIM_HORIZON"
WAITERS = waiter_model(__file__)


def mapping_settings(config: TableConfig, enabled: bool = True) -> dict[str, Any]:
    """The mapping's settings that the configuration decides (names as in UpdateEventSourceMapping)."""
    settings: dict[str, Any] = {
        "BatchSize": config.forward_lambda.batch_size,
        "MaximumBatchingWindowInSeconds": config.forward_lambda.batching_window_seconds,
        "ParallelizationFactor": config.forward_lambda.parallelization_factor,
        "MaximumRetryAttempts": config.forward_lambda.maximum_retry_attempts,
        # Splitting a failing batch isolates a poison record, so the others get applied.
        "BisectBatchOnFunctionError": True,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "Enabled": enabled,
    }
    if config.forward_lambda.on_failure_destination:
        settings["DestinationConfig"] = {"OnFailure": {"Destination": config.forward_lambda.on_failure_destination}}
    return settings


def _mapping_differs(current: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    differs = []
    for key, value in wanted.items():
        if key == "Enabled":
            have: Any = current.get("State") in ("Enabled", "Enabling")
        elif key == "DestinationConfig":
            have = ((current.get(key) or {}).get("OnFailure") or {}).get("Destination")
            value = value["OnFailure"]["Destination"]
        else:
            have = current.get(key)
        if have != value:
            differs.append(key)
    return differs


def _settled_mapping(lambda_client: Any, uuid: str) -> dict[str, Any]:
    """The mapping once it is out of Creating/Updating/...; Lambda refuses updates before."""
    waiter = create_waiter_with_client("EventSourceMappingSettled", WAITERS, lambda_client)
    try:
        waiter.wait(UUID=uuid)
    except WaiterError as error:
        if not timed_out(error):
            raise
        seconds = waiter.config.delay * waiter.config.max_attempts
        raise LambdaDeployError(
            f"event source mapping {uuid} is still {(error.last_response or {}).get('State')} after {seconds} s; "
            f"check it in the Lambda console and clear this task once it settles"
        ) from None
    return lambda_client.get_event_source_mapping(UUID=uuid)


def ensure_event_source_mapping(
    lambda_client: Any, config: TableConfig, stream_arn: str, function_name: str, enabled: bool = True
) -> dict[str, Any]:
    """The mapping from the table's stream to the function: found, updated where its settings differ,
    or created reading from TRIM_HORIZON. Returns its facts.

    A failure destination removed from the configuration stays on the mapping: Lambda rejects an empty
    one, and keeping it loses nothing (remove it in the console if it must go).
    """
    wanted = mapping_settings(config, enabled)
    pages = lambda_client.get_paginator("list_event_source_mappings").paginate(
        EventSourceArn=stream_arn, FunctionName=function_name
    )
    existing = [m for page in pages for m in page.get("EventSourceMappings", [])]
    if len(existing) > 1:
        raise LambdaDeployError(
            f"stream {stream_arn} has {len(existing)} event source mappings to {function_name} "
            f"({', '.join(m['UUID'] for m in existing)}); each would apply every record. Delete all but one, then "
            f"clear this task"
        )
    if not existing:
        created = lambda_client.create_event_source_mapping(
            EventSourceArn=stream_arn, FunctionName=function_name, StartingPosition=STARTING_POSITION, **wanted
        )
        mapping = _settled_mapping(lambda_client, created["UUID"])
        return _mapping_facts(mapping, created=True, updated=[])
    current = _settled_mapping(lambda_client, existing[0]["UUID"])
    if current.get("StartingPosition") not in (None, STARTING_POSITION):
        raise LambdaDeployError(
            f"event source mapping {current['UUID']} from {stream_arn} to {function_name} starts at "
            f"{current['StartingPosition']}, so it may have skipped records older than itself. Delete it and clear "
            f"this task: the new mapping reads the stream from {STARTING_POSITION} (re-applying is harmless)"
        )
    differs = _mapping_differs(current, wanted)
    if differs:
        lambda_client.update_event_source_mapping(UUID=current["UUID"], FunctionName=function_name, **wanted)
        current = _settled_mapping(lambda_client, current["UUID"])
    return _mapping_facts(current, created=False, updated=differs)


def _mapping_facts(mapping: dict[str, Any], created: bool, updated: list[str]) -> dict[str, Any]:
    return {
        "uuid": mapping["UUID"],
        "state": mapping.get("State"),
        "stream_arn": mapping.get("EventSourceArn"),
        "function_arn": mapping.get("FunctionArn"),
        "batch_size": mapping.get("BatchSize"),
        "created": created,
        "updated": updated,
    }
