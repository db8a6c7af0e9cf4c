"""Forward sync on AWS Lambda: the deploy task (the function and its event source mapping)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from dynamo2mongo.engines import aws_lambda as lambda_engine
from dynamo2mongo.config import TableConfig
from dynamo2mongo.sync.echo import EchoLedger
from dynamo2mongo.mongo_tls import require_tls_uri
from dynamo2mongo_airflow.base import TableOperator
from dynamo2mongo_airflow.connections import mongo_settings


class DeployForwardLambdaOperator(TableOperator):
    """Deploy forward sync's Lambda function and its DynamoDB Streams event source mapping.

    Builds the deployment package from the installed code (nothing is downloaded), writes the URI of
    the table's Mongo connection into the Secrets Manager secret the function reads, then creates or
    updates the function (its code only when CodeSha256 differs) and the mapping (TRIM_HORIZON, bisect
    on error, partial batch responses, the configured retries and on-failure destination). A second
    run with the same code and configuration changes nothing, so the task is safe to clear.

    Before the mapping can apply anything, ``forward_sync_started`` is set in the migration state, so
    that an import still running keeps the documents forward sync has written. Pushes the function
    ARN, the mapping UUID and the CodeSha256; the MongoDB URI is never logged nor pushed.

    The Amazon provider's LambdaCreateFunctionOperator only creates (it fails on an existing function)
    and has no counterpart for event source mappings, hence this operator.

    :param table: the table's configuration, as the DAG factory parsed it.
    :param enabled: whether the mapping reads the stream; False pauses forward sync, which then
        resumes where it stopped (within the stream's 24 h retention).
    """

    def __init__(self, *, enabled: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.enabled = enabled

    def run(self, config: TableConfig, context: Context) -> dict[str, Any]:
        state = self.state(config)
        migration = state.migration()
        stream_arn = migration.stream_arn
        if not stream_arn:
            raise AirflowFailException(
                f"table {config.name!r}: the migration state names no stream; run the enable_stream task first"
            )
        return self._deploy(config, stream_arn, self.table_key(config, migration).attrs)

    def _deploy(self, config: TableConfig, stream_arn: str, key_attrs: tuple[str, ...]) -> dict[str, Any]:
        lambda_client = self.aws(config, "lambda")
        with tempfile.TemporaryDirectory(prefix="dynamo2mongo-lambda-") as scratch:
            zip_bytes = lambda_engine.build_package(Path(scratch) / "forward-sync.zip").read_bytes()
        secret = lambda_engine.ensure_mongo_secret(
            self.aws(config, "secretsmanager"), lambda_engine.mongo_secret_id(config), self._mongo_uri(config)
        )
        function = lambda_engine.ensure_function(lambda_client, config, zip_bytes, secret["arn"], key_attrs)
        # The expiry indexes the relay makes when it starts: the function makes none on its own.
        meta = self.mongo(config)[config.metadata_database]
        EchoLedger(meta, config.name).ensure_indexes()
        state = self.state(config)
        state.update_migration(forward_sync_started=True)
        mapping = lambda_engine.ensure_event_source_mapping(
            lambda_client, config, stream_arn, function["function_name"], self.enabled
        )
        state.update_migration(
            forward={
                "engine": "lambda",
                "stream": stream_arn,
                "function_name": function["function_name"],
                "function_arn": function["function_arn"],
                "code_sha256": function["code_sha256"],
                "mapping_uuid": mapping["uuid"],
                "mapping_state": mapping["state"],
                "secret_arn": secret["arn"],
            }
        )
        self.log.info(
            "forward sync of %s on Lambda: function %s (created %s, code updated %s, configuration updated %s), "
            "mapping %s from %s (created %s, updated %s, %s)",
            config.name,
            function["function_arn"],
            function["created"],
            function["code_updated"],
            function["configuration_updated"] or "no",
            mapping["uuid"],
            stream_arn,
            mapping["created"],
            mapping["updated"] or "no",
            mapping["state"],
        )
        return {
            "function_arn": function["function_arn"],
            "mapping_uuid": mapping["uuid"],
            "code_sha256": function["code_sha256"],
        }

    @staticmethod
    def _mongo_uri(config: TableConfig) -> str:
        # The function has nothing else to read the connection's client options from.
        uri, options = mongo_settings(config)
        return require_tls_uri(lambda_engine.mongo_uri_with_options(uri, options), config)
