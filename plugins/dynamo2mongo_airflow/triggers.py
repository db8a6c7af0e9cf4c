"""Deferrable waits, in two shapes: a boto waiter is data on the provider's ``AwsBaseWaiterTrigger``
(the export here, the DMS task in ``dms``); a wait the domain decides is a ``DomainWaitTrigger``.

The forward-lag wait measures with ``ForwardLagProbe`` (one table's lag, its connections resolved the
Airflow way), which the worker path of the lag sensor and the monitor use too."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
import asyncio
import logging
from typing import Any, ClassVar

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.triggers.base import BaseTrigger, TriggerEvent

from dynamo2mongo.config import TableConfig
from dynamo2mongo.engines.aws_lambda import lambda_lag_facts
from dynamo2mongo.sync.checkpoints import now
from dynamo2mongo.sync.lag import LagOutcome, LagReport, lambda_lag, relay_lag, watch_forward_lag
from dynamo2mongo_airflow.connections import Connections


class ForwardLagProbe:
    """Measures the lag of one table's forward sync; keeps its clients between measurements."""

    def __init__(self, config: TableConfig) -> None:
        self.config = config
        self._connections = Connections(config)

    def measure(self) -> LagReport:
        config = self.config
        meta = self._connections.meta()
        migration = self._connections.state().migration()
        if config.sync.forward == "lambda":
            deployed = migration.forward_engine
            facts = lambda_lag_facts(
                self._connections.aws("lambda"),
                self._connections.aws("cloudwatch"),
                deployed.get("function_name", config.lambda_function_name),
                deployed.get("mapping_uuid"),
                now(),
            )
            return lambda_lag(facts, config.sync.retention_alarm_hours)
        return relay_lag(
            meta, config.name, migration.stream_arn, config.sync.heartbeat_timeout_seconds,
            config.sync.retention_alarm_hours, now()
        )

    def close(self) -> None:
        self._connections.close()

    def __enter__(self) -> "ForwardLagProbe":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def watch_lag(config: TableConfig, log: logging.Logger) -> LagOutcome:
    """The lag sensor's wait, deferred or in a worker: the domain's loop over this table's measurements."""
    probe = ForwardLagProbe(config)
    try:
        return await watch_forward_lag(probe.measure, config.name, config.sync, log)
    finally:
        await asyncio.to_thread(probe.close)


class DynamoDBClientHook(AwsBaseHook):
    """A client-type DynamoDB hook.

    The provider's DynamoDBHook is resource-based, and aiobotocore (which runs deferred waits in the
    triggerer) only offers clients; the provider's ``export_table`` waiter is found by the same name.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs["client_type"] = "dynamodb"
        super().__init__(*args, **kwargs)


class ExportCompletedTrigger(AwsBaseWaiterTrigger):
    """Wait, in the triggerer, until a DynamoDB export is COMPLETED (or FAILED).

    Uses the Amazon provider's ``export_table`` waiter (DescribeExport).

    :param export_arn: the export to wait for.
    :param estimate: the export's size and ETA, repeated in every poll's log line.
    :param waiter_delay: seconds between DescribeExport calls.
    :param waiter_max_attempts: how many calls before giving up.
    :param aws_conn_id: the Airflow connection for AWS credentials.
    :param region_name: the table's region.
    """

    aws_hook_class = DynamoDBClientHook

    def __init__(
        self,
        export_arn: str,
        estimate: str = "",
        waiter_delay: int = 30,
        waiter_max_attempts: int = 720,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ) -> None:
        super().__init__(
            serialized_fields={"export_arn": export_arn, "estimate": estimate},
            waiter_name="export_table",
            waiter_args={"ExportArn": export_arn},
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            failure_message=f"DynamoDB export {export_arn} failed",
            status_message=f"Export ({estimate}) status, items" if estimate else "Export status, items",
            status_queries=["ExportDescription.ExportStatus", "ExportDescription.ItemCount"],
            return_key="export_arn",
            return_value=export_arn,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )


class DomainWaitTrigger(BaseTrigger):
    """Base of every trigger whose wait the domain decides, in the shape of ``AwsBaseWaiterTrigger``.

    As in the provider's base, a subclass hands its keyword arguments over as ``serialized_fields``,
    ``serialize()`` is the class path and those fields, and the wait ends in one event: ``status``
    ``success`` or ``error``, ``message``, and the wait's result under ``return_key``. The sensor's
    worker path builds the same event with ``event()``, so one ``execute_complete`` serves both.

    Not a subclass of the provider's base, which falls short here: its ``run()`` polls one boto
    waiter on the client of one AWS hook (``__init_subclass__`` refuses a subclass without one), while
    forward lag is measured from the metadata database and, on Lambda, from two AWS APIs, and decided
    by a loop that the worker path runs too; and its ``serialize()`` adds the AWS connection and
    region, which the table configuration these triggers carry already names.
    """

    return_key: ClassVar[str] = "value"

    def __init__(self, *, serialized_fields: dict[str, Any]) -> None:
        super().__init__()
        self.serialized_fields = serialized_fields

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", dict(self.serialized_fields)

    @classmethod
    def event(cls, done: bool, message: str | None, value: Any) -> dict[str, Any]:
        return {"status": "success" if done else "error", "message": message, cls.return_key: value}

    @abc.abstractmethod
    async def watch(self) -> tuple[bool, str | None, Any]:
        """Wait until the domain decides: (done, why not, the result)."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(self.event(*await self.watch()))


class ForwardLagTrigger(DomainWaitTrigger):
    """Wait, in the triggerer, until forward-sync lag stays under the threshold or the wait must fail.

    The loop is the domain's (``dynamo2mongo.sync.lag.watch_forward_lag``); the event carries the last
    measurement under ``report``.

    :param config: the run's resolved table configuration (``TableConfig.as_json``): the threshold is the
        run's Param, not what the file says when the triggerer reads it.
    """

    return_key = "report"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(serialized_fields={"config": config})
        self.config = TableConfig.from_json(config)

    async def watch(self) -> tuple[bool, str | None, Any]:
        return await watch_lag(self.config, self.log)
