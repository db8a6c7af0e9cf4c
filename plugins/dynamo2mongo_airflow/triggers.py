"""Deferrable waits: a boto waiter and its arguments where one fits; the lag measurement otherwise."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.triggers.base import BaseTrigger, TriggerEvent
from botocore.exceptions import BotoCoreError, ClientError
from pymongo.errors import PyMongoError

from dynamo2mongo.sync.lag import LagWatch
from dynamo2mongo_airflow.lag_probe import ForwardLagProbe


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


class ForwardLagTrigger(BaseTrigger):
    """Measure forward-sync lag, in the triggerer, until it stays under the threshold or must fail.

    Not an ``AwsBaseWaiterTrigger``: lag comes from the metadata database (relay checkpoints and
    heartbeat) and, in Lambda mode, from two AWS APIs, which no single boto waiter can express.
    Each measurement runs in a thread (pymongo and boto3 block); the decision is the domain's
    ``LagWatch``.

    :param table: the table's name in the table configuration.
    :param threshold_seconds: lag under which a check counts as caught up (the run's Param).
    :param timeout_seconds: give up after this long without a decision.
    """

    def __init__(self, table: str, threshold_seconds: int, timeout_seconds: int) -> None:
        super().__init__()
        self.table = table
        self.threshold_seconds = threshold_seconds
        self.timeout_seconds = timeout_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"table": self.table, "threshold_seconds": self.threshold_seconds, "timeout_seconds": self.timeout_seconds},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        probe = ForwardLagProbe(self.table)
        config = probe.config
        watch = LagWatch(self.threshold_seconds, config.sync.lag_consecutive_checks)
        deadline = time.monotonic() + self.timeout_seconds
        try:
            while True:
                try:
                    report = await asyncio.to_thread(probe.measure)
                except (BotoCoreError, ClientError, PyMongoError) as error:
                    self.log.warning("measuring the forward lag of %s failed (%s); trying again", self.table, error)
                else:
                    decision = watch.observe(report)
                    self.log.info("forward lag of %s: %s (%s)", self.table, report.detail, decision)
                    if decision != "waiting":
                        yield TriggerEvent({"status": "success" if decision == "caught_up" else "failed",
                                            "message": report.fatal, "report": report.as_dict()})
                        return
                if time.monotonic() > deadline:
                    yield TriggerEvent({"status": "failed", "report": None, "message": (
                        f"forward sync of {self.table} did not catch up within {self.timeout_seconds} s "
                        f"(threshold {self.threshold_seconds} s); see the relay's or the function's logs")})
                    return
                await asyncio.sleep(config.sync.lag_poll_seconds)
        finally:
            await asyncio.to_thread(probe.close)
