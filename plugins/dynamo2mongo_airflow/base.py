"""What every dynamo2mongo operator shares: its table's configuration, clients and state store."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from airflow.sdk import BaseOperator, Context, RetryDecision, RetryPolicy
from airflow.sdk.exceptions import AirflowFailException

from dynamo2mongo.config import TableConfig
from dynamo2mongo.errors import Permanent, cannot_heal
from dynamo2mongo.prepare.table import TableKey, describe_table
from dynamo2mongo.state import Migration, StateStore
from dynamo2mongo_airflow.connections import Connections


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
    metadata database at once, so their clients come from the table's ``Connections`` (which the table
    configuration's connection ids name) rather than through a single ``aws_hook_class``, and are
    closed when ``execute`` or ``execute_complete`` ends.

    :param table: the table's configuration, as the DAG factory parsed it.
    """

    ui_color = "#e8f4f8"

    def __init__(self, *, table: TableConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table = table
        self._connections: Connections | None = None

    def table_config(self, context: Context) -> TableConfig:
        return run_config(self.table, context)

    def connections(self, config: TableConfig) -> Connections:
        if self._connections is None:
            self._connections = Connections(config)
        return self._connections

    def aws(self, config: TableConfig, service: str) -> Any:
        return self.connections(config).aws(service)

    def mongo(self, config: TableConfig) -> Any:
        return self.connections(config).mongo()

    def state(self, config: TableConfig) -> StateStore:
        return self.connections(config).state()

    def table_key(self, config: TableConfig, migration: Migration) -> TableKey:
        """The key preflight recorded; where it recorded none (a task run before preflight), DescribeTable's."""
        return migration.key or describe_table(self.aws(config, "dynamodb"), config.source_table).key

    @contextlib.contextmanager
    def closing_connections(self) -> Iterator[None]:
        """Around a task's work: the clients it made are closed, and the next attempt makes its own."""
        try:
            yield
        finally:
            if self._connections is not None:
                self._connections.close()
                self._connections = None

    def execute(self, context: Context) -> Any:
        with permanent_errors_fail_fast(), self.closing_connections():
            return self.run(self.table_config(context), context)

    def run(self, config: TableConfig, context: Context) -> Any:
        raise NotImplementedError
