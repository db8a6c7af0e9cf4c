"""What every dynamo2mongo operator shares: its table's configuration, clients and state store."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.mongo.hooks.mongo import MongoHook
from airflow.sdk import BaseOperator, Context, RetryDecision, RetryPolicy
from airflow.sdk.exceptions import AirflowFailException

from dynamo2mongo.config import TableConfig
from dynamo2mongo.errors import Permanent, cannot_heal
from dynamo2mongo.mongo_tls import require_tls
from dynamo2mongo.prepare.table import TableKey, describe_table
from dynamo2mongo.state import Migration, StateStore


@contextlib.contextmanager
def permanent_errors_fail_fast() -> Iterator[None]:
    try:
        yield
    except Exception as error:
        reason = cannot_heal(error)
        if reason is None:
            raise
        # A domain error's message already says what to fix; a library's gets the reason appended.
        message = str(error) if isinstance(error, Permanent) else f"{error} ({reason})"
        raise AirflowFailException(message) from error


class OnCallRetryPolicy(RetryPolicy):
    """Fail at once on errors that cannot heal (``dynamo2mongo.errors.cannot_heal``); retry the rest as usual.

    Covers what ``TableOperator.execute`` does not wrap: the sensors' pokes and the provider's DMS sensor.
    """

    def evaluate(self, exception: BaseException, try_number: int, max_tries: int,
                 context: Context | None = None) -> RetryDecision:
        reason = cannot_heal(exception)
        return RetryDecision.fail(reason) if reason else RetryDecision.default()


def run_config(table: TableConfig, context: Context) -> TableConfig:
    """The table's configuration for this run: the one its DAG was built from, with the run's Params.

    The DAG file parsed the configuration file once; a task never reads it again, so what the DAG's
    shape came from and what its tasks do cannot drift apart.
    """
    with permanent_errors_fail_fast():
        return table.with_params(context.get("params"))


class TableOperator(BaseOperator):
    """Base of the operators that act on one configured table.

    The Amazon provider's operators each own one AWS hook; ours span DynamoDB, S3, MongoDB and the
    metadata database at once, so connections are resolved here from the table configuration (which
    names the Airflow connection ids) rather than through a single ``aws_hook_class``.

    :param table: the table's configuration, as the DAG factory parsed it.
    """

    ui_color = "#e8f4f8"

    def __init__(self, *, table: TableConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table = table
        self._mongo = None

    def table_config(self, context: Context) -> TableConfig:
        return run_config(self.table, context)

    @staticmethod
    def aws(config: TableConfig, service: str) -> Any:
        return AwsBaseHook(aws_conn_id=config.aws_conn_id, region_name=config.region, client_type=service).get_conn()

    def mongo(self, config: TableConfig) -> Any:
        if self._mongo is None:
            self._mongo = require_tls(MongoHook(mongo_conn_id=config.mongo_conn_id).get_conn(), config)
        return self._mongo

    def state(self, config: TableConfig) -> StateStore:
        return StateStore(self.mongo(config)[config.metadata_database], config.name)

    def table_key(self, config: TableConfig, migration: Migration) -> TableKey:
        """The key preflight recorded; where it recorded none (a task run before preflight), DescribeTable's."""
        return migration.key or describe_table(self.aws(config, "dynamodb"), config.source_table).key

    def execute(self, context: Context) -> Any:
        with permanent_errors_fail_fast():
            try:
                return self.run(self.table_config(context), context)
            finally:
                if self._mongo is not None:
                    self._mongo.close()
                    self._mongo = None

    def run(self, config: TableConfig, context: Context) -> Any:
        raise NotImplementedError
