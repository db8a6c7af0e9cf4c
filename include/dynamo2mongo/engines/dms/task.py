"""The CDC-only replication task: created or modified to match the configuration, started (resumed
from its checkpoint once it has run), stopped, and its status read.

DMS refuses Start, Stop and Modify while a task is in a transition; waits for a task to settle are the
``ReplicationTaskSettled`` waiter in ``waiters.json``, waits for running or stopped are botocore's own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError, WaiterError
from botocore.waiter import create_waiter_with_client

from dynamo2mongo.aws_errors import error_code
from dynamo2mongo.config import DmsConfig, TableConfig
from dynamo2mongo.engines.dms.mappings import task_settings
from dynamo2mongo.engines.dms.resources import TAG_TABLE, DmsError, DmsTimeout, contains, identifier, required, waiter_config
from dynamo2mongo.engines.waiters import timed_out, waiter_model

MIGRATION_TYPE = "cdc"
# DMS refuses Start/Stop/Modify while a task is in one of these; they end on their own.
_TRANSITIONS = ("creating", "modifying", "starting", "stopping", "testing", "moving")
WAITERS = waiter_model(__file__)


@dataclass(frozen=True)
class TaskStatus:
    """A replication task's status for sensors and logs; ``reason`` from LastFailureMessage or StopReason."""

    arn: str
    identifier: str
    status: str
    reason: str | None = None


def _describe_task(dms: Any, task_id: str) -> dict[str, Any] | None:
    try:
        found = dms.describe_replication_tasks(Filters=[{"Name": "replication-task-id", "Values": [task_id]}])[
            "ReplicationTasks"
        ]
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundFault":
            return None
        raise
    return found[0] if found else None


def _task(dms: Any, task_id: str, config: TableConfig) -> dict[str, Any]:
    task = _describe_task(dms, task_id)
    if task is None:
        raise DmsError(
            f"table {config.name!r}: DMS replication task {task_id} does not exist; run the backward-sync deploy task first"
        )
    return task


def _reason(task: dict[str, Any]) -> str | None:
    return task.get("LastFailureMessage") or task.get("StopReason") or None


def _wait(dms: Any, waiter: Any, task: dict[str, Any], settings: DmsConfig, config: TableConfig, goal: str) -> None:
    try:
        waiter.wait(
            Filters=[{"Name": "replication-task-arn", "Values": [task["ReplicationTaskArn"]]}],
            WithoutSettings=True,
            WaiterConfig=waiter_config(settings),
        )
    except WaiterError as error:
        now = _describe_task(dms, task["ReplicationTaskIdentifier"]) or {}
        raise (DmsTimeout if timed_out(error) else DmsError)(
            f"table {config.name!r}: DMS replication task {task['ReplicationTaskIdentifier']} did not become {goal}: it "
            f"is {now.get('Status', 'gone')}"
            + (f" ({_reason(now)})" if _reason(now) else "")
            + ". Its CloudWatch log (dms-tasks-<instance>) says why; fix the cause, then clear this task"
        ) from None


def _wait_settled(dms: Any, task: dict[str, Any], settings: DmsConfig, config: TableConfig) -> None:
    _wait(dms, create_waiter_with_client("ReplicationTaskSettled", WAITERS, dms), task, settings, config, "ready")


def ensure_replication_task(
    dms: Any,
    settings: DmsConfig,
    config: TableConfig,
    source_arn: str,
    target_arn: str,
    mappings: dict[str, Any],
) -> dict[str, Any]:
    """The CDC-only task; a task whose mappings or settings differ is modified, stopping it first when it
    runs and resuming it from its checkpoint afterwards (nothing captured meanwhile is lost)."""
    instance = required(settings, "replication_instance_arn", config, "the replication task runs on it")
    task_id = identifier(settings, config, "backward")
    wanted = {
        "MigrationType": MIGRATION_TYPE,
        "TableMappings": json.dumps(mappings, sort_keys=True),
        "ReplicationTaskSettings": json.dumps(task_settings(), sort_keys=True),
    }
    facts: dict[str, Any] = {"identifier": task_id, "created": False, "modified": [], "restarted": False}
    current = _describe_task(dms, task_id)
    if current is None:
        created = dms.create_replication_task(
            ReplicationTaskIdentifier=task_id,
            SourceEndpointArn=source_arn,
            TargetEndpointArn=target_arn,
            ReplicationInstanceArn=instance,
            Tags=[{"Key": TAG_TABLE, "Value": config.name}],
            **wanted,
        )["ReplicationTask"]
        return {**facts, "arn": created["ReplicationTaskArn"], "created": True, "status": created.get("Status")}
    bound = {
        "ReplicationInstanceArn": instance,
        "SourceEndpointArn": source_arn,
        "TargetEndpointArn": target_arn,
    }
    moved = [key for key, value in bound.items() if current.get(key) != value]
    if moved:
        raise DmsError(
            f"table {config.name!r}: DMS replication task {task_id} uses another {', '.join(moved)} than the "
            f"configuration ({', '.join(f'{k}={current.get(k)}' for k in moved)}). A task's endpoints cannot be "
            f"changed: delete the task (its CDC checkpoint goes with it) and deploy again, or move it to the "
            f"configured instance with 'aws dms move-replication-task'"
        )
    differs = []
    if current.get("MigrationType") != MIGRATION_TYPE:
        differs.append("MigrationType")
    # Mappings are compared whole: a rule DMS still holds but the configuration dropped must go.
    if json.loads(current.get("TableMappings") or "{}") != mappings:
        differs.append("TableMappings")
    if not contains(json.loads(current.get("ReplicationTaskSettings") or "{}"), task_settings()):
        differs.append("ReplicationTaskSettings")
    facts.update(arn=current["ReplicationTaskArn"], status=current.get("Status"), modified=differs)
    if not differs:
        return facts
    was_running = current.get("Status") in ("running", "starting")
    if was_running:
        stop_task(dms, settings, config)
    elif current.get("Status") in _TRANSITIONS:
        _wait_settled(dms, current, settings, config)
    dms.modify_replication_task(ReplicationTaskArn=current["ReplicationTaskArn"], **{k: wanted[k] for k in differs})
    _wait_settled(dms, current, settings, config)
    if was_running:
        resume_task(dms, settings, config)
        facts["restarted"] = True
    facts["status"] = (_describe_task(dms, task_id) or {}).get("Status")
    return facts


def _start(
    dms: Any, task: dict[str, Any], start_type: str, settings: DmsConfig, config: TableConfig, wait: bool
) -> None:
    try:
        dms.start_replication_task(ReplicationTaskArn=task["ReplicationTaskArn"], StartReplicationTaskType=start_type)
    except ClientError as error:
        if error_code(error) != "InvalidResourceStateFault":
            raise
        # Still being created or modified: DMS takes the start once that is over.
        _wait_settled(dms, task, settings, config)
        dms.start_replication_task(ReplicationTaskArn=task["ReplicationTaskArn"], StartReplicationTaskType=start_type)
    if wait:
        _wait(dms, dms.get_waiter("replication_task_running"), task, settings, config, "running")


def start_task(dms: Any, settings: DmsConfig, config: TableConfig, wait: bool = True) -> str | None:
    """Start backward sync; returns the StartReplicationTaskType used, or None when it already runs.

    A task that never ran starts with ``start-replication`` (CDC from now). A task that ran before is
    resumed from its checkpoint (``resume-processing``): starting it afresh would skip every change
    made while it was stopped. ``wait=False`` returns once DMS took the request (a sensor waits).
    """
    task = _task(dms, identifier(settings, config, "backward"), config)
    status = task.get("Status")
    if status in ("running", "starting"):
        if status == "starting" and wait:
            _wait(dms, dms.get_waiter("replication_task_running"), task, settings, config, "running")
        return None
    if status == "stopping":
        _wait(dms, dms.get_waiter("replication_task_stopped"), task, settings, config, "stopped")
    start_type = "resume-processing" if task.get("ReplicationTaskStartDate") else "start-replication"
    _start(dms, task, start_type, settings, config, wait)
    return start_type


def resume_task(dms: Any, settings: DmsConfig, config: TableConfig, wait: bool = True) -> bool:
    """Resume a stopped or failed task from its checkpoint; False when it already runs."""
    task = _task(dms, identifier(settings, config, "backward"), config)
    if task.get("Status") in ("running", "starting"):
        if task.get("Status") == "starting" and wait:
            _wait(dms, dms.get_waiter("replication_task_running"), task, settings, config, "running")
        return False
    if not task.get("ReplicationTaskStartDate"):
        raise DmsError(
            f"table {config.name!r}: DMS replication task {task['ReplicationTaskIdentifier']} never ran, so there is "
            f"no checkpoint to resume from; start it with the backward-sync start task"
        )
    if task.get("Status") == "stopping":
        _wait(dms, dms.get_waiter("replication_task_stopped"), task, settings, config, "stopped")
    _start(dms, task, "resume-processing", settings, config, wait)
    return True


def stop_task(dms: Any, settings: DmsConfig, config: TableConfig) -> bool:
    """Stop the task (its checkpoint is kept for a resume); False when it was not running."""
    task = _task(dms, identifier(settings, config, "backward"), config)
    status = task.get("Status")
    if status == "starting":
        _wait(dms, dms.get_waiter("replication_task_running"), task, settings, config, "running")
        status = "running"
    if status == "running":
        dms.stop_replication_task(ReplicationTaskArn=task["ReplicationTaskArn"])
    elif status != "stopping":
        return False
    _wait(dms, dms.get_waiter("replication_task_stopped"), task, settings, config, "stopped")
    return True


def task_status(dms: Any, settings: DmsConfig, config: TableConfig) -> TaskStatus:
    """The task's status ("running", "stopped", "failed", ...) and, when DMS gives one, the reason."""
    task = _task(dms, identifier(settings, config, "backward"), config)
    return TaskStatus(task["ReplicationTaskArn"], task["ReplicationTaskIdentifier"], task.get("Status", ""), _reason(task))
