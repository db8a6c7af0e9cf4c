"""Forward-lag measurements of a configured table, with its connections resolved the Airflow way."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.mongo.hooks.mongo import MongoHook

from dynamo2mongo.sync.checkpoints import now
from dynamo2mongo.config import TableConfig
from dynamo2mongo.sync.lag import LagOutcome, LagReport, lambda_lag, relay_lag, watch_forward_lag
from dynamo2mongo.engines.aws_lambda import lambda_lag_facts
from dynamo2mongo.mongo_tls import require_tls
from dynamo2mongo.state import StateStore


class ForwardLagProbe:
    """Measures the lag of one table's forward sync; keeps its clients between measurements."""

    def __init__(self, config: TableConfig) -> None:
        self.config = config
        self._mongo: Any = None
        self._aws: dict[str, Any] = {}

    def _client(self, service: str) -> Any:
        if service not in self._aws:
            config = self.config
            self._aws[service] = AwsBaseHook(
                aws_conn_id=config.aws_conn_id, region_name=config.region, client_type=service
            ).get_conn()
        return self._aws[service]

    def measure(self) -> LagReport:
        config = self.config
        if self._mongo is None:
            self._mongo = require_tls(MongoHook(mongo_conn_id=config.mongo_conn_id).get_conn(), config)
        meta = self._mongo[config.metadata_database]
        migration = StateStore(meta, config.name).migration()
        if config.sync.forward == "lambda":
            deployed = migration.forward_engine
            facts = lambda_lag_facts(
                self._client("lambda"),
                self._client("cloudwatch"),
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
        if self._mongo is not None:
            self._mongo.close()
            self._mongo = None


async def watch_lag(config: TableConfig, log: logging.Logger) -> LagOutcome:
    """The lag sensor's wait, deferred or in a worker: the domain's loop over this table's measurements."""
    probe = ForwardLagProbe(config)
    try:
        return await watch_forward_lag(probe.measure, config.name, config.sync, log)
    finally:
        await asyncio.to_thread(probe.close)
