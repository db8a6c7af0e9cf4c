"""Deferrable waits: each names a boto waiter and its arguments, nothing else."""

from __future__ import annotations

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger


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
    :param waiter_delay: seconds between DescribeExport calls.
    :param waiter_max_attempts: how many calls before giving up.
    :param aws_conn_id: the Airflow connection for AWS credentials.
    :param region_name: the table's region.
    """

    aws_hook_class = DynamoDBClientHook

    def __init__(
        self,
        export_arn: str,
        waiter_delay: int = 30,
        waiter_max_attempts: int = 720,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ) -> None:
        super().__init__(
            serialized_fields={"export_arn": export_arn},
            waiter_name="export_table",
            waiter_args={"ExportArn": export_arn},
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            failure_message=f"DynamoDB export {export_arn} failed",
            status_message="Export status is",
            status_queries=["ExportDescription.ExportStatus", "ExportDescription.ItemCount"],
            return_key="export_arn",
            return_value=export_arn,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )
