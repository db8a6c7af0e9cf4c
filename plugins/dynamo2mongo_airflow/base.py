"""What every dynamo2mongo operator shares: its table's configuration, clients and state store."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.mongo.hooks.mongo import MongoHook
from airflow.sdk import BaseOperator, Context, RetryDecision, RetryPolicy
from airflow.sdk.exceptions import AirflowFailException

from dynamo2mongo.config import TableConfig, load_config
from dynamo2mongo.errors import Permanent, cannot_heal
from dynamo2mongo.mongo_tls import require_tls
from dynamo2mongo.prepare.table import TableKey, describe_table
from dynamo2mongo.state import Migration, StateStore

# Trigger-form Params that may override the table configuration for one run, and the key each sets.
PARAM_OVERRIDES = {
    "export_format": "export.format",
    "import_batch_size": "imports.batch_size",
    "lag_threshold_seconds": "sync.lag_threshold_seconds",
}


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


class TableOperator(BaseOperator):
    """Base of the operators that act on one configured table.

    The Amazon provider's operators each own one AWS hook; ours span DynamoDB, S3, MongoDB and the
    metadata database at once, so connections are resolved here from the table configuration (which
    names the Airflow connection ids) rather than through a single ``aws_hook_class``.

    :param table: the ``name`` of the table in the table configuration (templated).
    """

    template_fields: tuple[str, ...] = ("table",)
    ui_color = "#e8f4f8"

    def __init__(self, *, table: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table = table
        self._mongo = None

    def table_config(self, context: Context) -> TableConfig:
        by_name = {t.name: t for t in load_config()}
        if self.table not in by_name:
            raise AirflowFailException(
                f"table {self.table!r} is not in the table configuration any more; restore its entry"
            )
        params = context.get("params") or {}
        overrides = {key: params.get(param) for param, key in PARAM_OVERRIDES.items()}
        with permanent_errors_fail_fast():
            return by_name[self.table].with_overrides(**overrides)

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
