"""Forward-lag measurements of a configured table, with its connections resolved the Airflow way."""

from __future__ import annotations

import asyncio
import logging

from dynamo2mongo.sync.checkpoints import now
from dynamo2mongo.config import TableConfig
from dynamo2mongo.sync.lag import LagOutcome, LagReport, lambda_lag, relay_lag, watch_forward_lag
from dynamo2mongo.engines.aws_lambda import lambda_lag_facts
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
