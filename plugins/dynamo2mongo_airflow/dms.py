"""Backward sync on AWS DMS (``sync.backward: dms``): deploy, start, and wait until running.

Built on the Amazon provider where it fits: every DMS call goes through the provider's client of the
table's AWS connection (``connections.Connections``: its region and endpoint URL work as everywhere
else), the sensor is the provider's
``DmsTaskBaseSensor``, and its deferrable wait is an ``AwsBaseWaiterTrigger`` on botocore's
``replication_task_running`` waiter. The provider's ``DmsCreateTaskOperator``, ``DmsStartTaskOperator``
and ``DmsStopTaskOperator`` are not used: they take ready-made ARNs and settings, create a second task
on a re-run, and fail on a task already in the state asked for, where a cleared task must find what a
first run made and change only what differs (``dynamo2mongo.engines.dms``). None of them handles
endpoints or the credentials secret.

The MongoDB URI and credentials come from the table's Mongo connection and go only into the Secrets
Manager secret the source endpoint names; logs and XCom carry ARNs and identifiers.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.hooks.dms import DmsHook
from airflow.providers.amazon.aws.sensors.dms import DmsTaskBaseSensor
from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from dynamo2mongo.engines import dms as dms_engine
from dynamo2mongo.config import TableConfig
from dynamo2mongo.mongo_tls import TlsRequired
from dynamo2mongo_airflow.base import TableOperator
from dynamo2mongo_airflow.connections import mongo_settings

STATE_KEY = "backward_dms"


class _DmsTableOperator(TableOperator):
    """What the DMS operators share: the report of a control task, and DMS's errors failing the task."""

    def report(self, dms: Any, config: TableConfig, outcome: str, **facts: Any) -> dict[str, Any]:
        """Log what a control task did and the task's status now; returns the task ARN and ``facts`` for XCom."""
        status = dms_engine.task_status(dms, config.dms, config)
        self.log.info("backward-sync task %s of %s: %s, now %s", status.identifier, config.name, outcome, status.status)
        return {"task_arn": status.arn, **facts}


class DeployDmsBackwardOperator(_DmsTableOperator):
    """Deploy backward sync on DMS: the credentials secret, the MongoDB source and DynamoDB target
    endpoints (tested from the replication instance when new or changed) and the CDC-only task.

    A second run with the same configuration changes nothing; a changed mapping or setting modifies the
    task, stopping and resuming it from its checkpoint if it runs. The task is not started here. Pushes
    the task and endpoint ARNs.

    :param table: the table's configuration, as the DAG factory parsed it.
    """

    def run(self, config: TableConfig, context: Context) -> dict[str, Any]:
        state = self.state(config)
        key_attrs, key_types = self.table_key(config, state.migration())
        result = dms_engine.deploy(
            self.aws(config, "dms"),
            self.aws(config, "secretsmanager"),
            config.dms,
            config,
            self._mongo_source(config),
            key_attrs,
            key_types,
        )
        source_endpoint, target_endpoint, task = result["source_endpoint"], result["target_endpoint"], result["task"]
        facts = {
            "task_arn": task["arn"],
            "source_endpoint_arn": source_endpoint["arn"],
            "target_endpoint_arn": target_endpoint["arn"],
        }
        state.update_migration(**{STATE_KEY: {**facts, "secret_arn": source_endpoint["secret_arn"]}})
        self.log.info(
            "backward sync of %s on DMS: task %s (created %s, modified %s, restarted %s, %s), source endpoint %s "
            "(created %s, modified %s), target endpoint %s (created %s, modified %s), connections tested: %s",
            config.name,
            task["identifier"],
            task["created"],
            task["modified"] or "no",
            task["restarted"],
            task["status"],
            source_endpoint["identifier"],
            source_endpoint["created"],
            source_endpoint["modified"] or "no",
            target_endpoint["identifier"],
            target_endpoint["created"],
            target_endpoint["modified"] or "no",
            result["tested"] or "none needed",
        )
        return facts

    @staticmethod
    def _mongo_source(config: TableConfig) -> dms_engine.MongoSource:
        # The connection's client options (tls, authSource...) count too.
        uri, options = mongo_settings(config)
        source = dms_engine.mongo_source(uri, options, config.name)
        if config.tls_required and not source.tls:
            raise TlsRequired(f"table {config.name!r}: the DMS source endpoint for connection "
                              f"{config.mongo_conn_id!r} would read MongoDB without TLS, which the "
                              f"{config.environment} environment requires: set {{\"tls\": true}} in the "
                              f"connection's extras, or mongo_tls: optional for this table")
        return source


class StartDmsBackwardOperator(_DmsTableOperator):
    """Start the backward-sync task: ``start-replication`` the first time, ``resume-processing`` from its
    checkpoint once it has run (starting afresh would skip the changes made while it was stopped).
    Nothing happens when it already runs. Returns once DMS took the request: follow it with
    ``DmsBackwardRunningSensor``. Pushes the task ARN and the start type used (None: already running).

    :param table: the table's configuration, as the DAG factory parsed it.
    """

    def run(self, config: TableConfig, context: Context) -> dict[str, Any]:
        dms = self.aws(config, "dms")
        start_type = dms_engine.start_task(dms, config.dms, config, wait=False)
        return self.report(dms, config, start_type or "already running", start_type=start_type)


class DmsTaskRunningTrigger(AwsBaseWaiterTrigger):
    """Wait, in the triggerer, until a classic DMS replication task runs (botocore's
    ``replication_task_running`` waiter: fails when the task is ready, stopped or failed instead).

    The provider's DMS triggers cover serverless replications, task modification and table reloads,
    not a task reaching "running".

    :param replication_task_arn: the task to wait for.
    :param waiter_delay: seconds between DescribeReplicationTasks calls.
    :param waiter_max_attempts: how many calls before giving up.
    :param aws_conn_id: the Airflow connection for AWS credentials.
    :param region_name: the task's region.
    """

    aws_hook_class = DmsHook

    def __init__(
        self,
        replication_task_arn: str,
        waiter_delay: int = 15,
        waiter_max_attempts: int = 80,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ) -> None:
        super().__init__(
            serialized_fields={"replication_task_arn": replication_task_arn},
            waiter_name="replication_task_running",
            waiter_args={
                "Filters": [{"Name": "replication-task-arn", "Values": [replication_task_arn]}],
                "WithoutSettings": True,
            },
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            failure_message=f"DMS replication task {replication_task_arn} did not reach running",
            status_message="Replication task status is",
            status_queries=["ReplicationTasks[0].Status", "ReplicationTasks[0].StopReason", "ReplicationTasks[0].LastFailureMessage"],
            return_key="replication_task_arn",
            return_value=replication_task_arn,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )


class DmsBackwardRunningSensor(DmsTaskBaseSensor):
    """Wait until the backward-sync task runs; fail with DMS's StopReason or LastFailureMessage when it
    fails or stops instead.

    The provider's ``DmsTaskBaseSensor`` does the poke; it has no deferrable mode, so this sensor adds
    one with ``DmsTaskRunningTrigger``.

    :param replication_task_arn: the task (templated; usually the deploy or start task's XCom).
    :param deferrable: wait in the triggerer (default) rather than in a worker slot.
    :param waiter_delay: seconds between status calls while deferred.
    :param waiter_max_attempts: status calls before giving up while deferred.
    :param aws_conn_id: the table's AWS connection (``aws_conn_id`` of its configuration).
    :param region_name: the table's region.
    """

    def __init__(
        self,
        *,
        deferrable: bool = True,
        waiter_delay: int = 15,
        waiter_max_attempts: int = 80,
        **kwargs: Any,
    ) -> None:
        kwargs["target_statuses"] = ["running"]
        # Not "ready": a task just asked to start may still show it for a moment.
        kwargs["termination_statuses"] = ["failed", "failed-move", "stopped", "deleting"]
        kwargs.setdefault("poke_interval", waiter_delay)
        super().__init__(**kwargs)
        self.deferrable = deferrable
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return None
        self.defer(
            trigger=DmsTaskRunningTrigger(
                replication_task_arn=self.replication_task_arn,
                waiter_delay=self.waiter_delay,
                waiter_max_attempts=self.waiter_max_attempts,
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
                verify=self.verify,
                botocore_config=self.botocore_config,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        if (event or {}).get("status") == "success":
            self.log.info("DMS replication task %s is running", self.replication_task_arn)
            return
        task = self.hook.get_task_description(self.replication_task_arn) or {}
        reason = task.get("LastFailureMessage") or task.get("StopReason") or (event or {}).get("message")
        raise AirflowFailException(
            f"DMS replication task {self.replication_task_arn} is {task.get('Status', 'gone')}, not running: {reason}. "
            f"Its CloudWatch log says why; fix the cause, then clear the start_backward task, which resumes it "
            f"from its checkpoint, and this one"
        )
