"""The operations around a migration: cut-over, rollback and finish, as one parameterized task.

Thin: each engine's stop and start is wired to ``dynamo2mongo.operations.cutover.Switches``; the checks that
refuse an operation which would lose data live in the domain.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from dynamo2mongo.engines import dms as dms_engine, aws_lambda as lambda_engine
from dynamo2mongo.sync.checkpoints import now, read_heartbeat
from dynamo2mongo.config import TableConfig
from dynamo2mongo.operations.cutover import BACKWARD, FORWARD, OperationRefused, Operations, Switches, relay_switches
from dynamo2mongo_airflow.base import TableOperator

OPERATIONS = ("cut_over", "rollback", "finish")
# The two that switch the writer: the form asks for the table's name typed as confirmation.
CONFIRMED = ("cut_over", "rollback")
# DMS reports no position per change: a rollback on DMS waits this long after the writes stopped.
DMS_SETTLE = dt.timedelta(seconds=60)


class MigrationOperationOperator(TableOperator):
    """Run one operation on the table: ``cut_over``, ``rollback`` or ``finish`` (see dynamo2mongo.operations.cutover).

    Refuses (and fails without retrying) when the operation would lose data in the current state,
    saying what to do first. Idempotent: run again, it finds its work done.

    :param operation: ``cut_over``, ``rollback`` or ``finish`` (templated: the run's Param).
    :param resume_forward: on rollback, resume forward sync (templated).
    :param strip_metadata: on finish, remove the ``_ddb`` field from every document (templated).
    :param disable_stream: on finish, disable the table's stream if this migration enabled it (templated).
    :param confirm: the table's name, typed by whoever triggers cut_over or rollback (templated); ``None``
        skips the check (a caller that names the table in code, not a form).
    """

    template_fields = ("operation", "resume_forward", "strip_metadata", "disable_stream", "confirm")

    def __init__(self, *, operation: str, resume_forward: Any = True, strip_metadata: Any = False,
                 disable_stream: Any = False, confirm: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.confirm = confirm
        self.operation = operation
        self.resume_forward = resume_forward
        self.strip_metadata = strip_metadata
        self.disable_stream = disable_stream

    def _lambda_switches(self, config: TableConfig, meta: Any, stream_arn: str) -> Switches:
        client = self.aws(config, "lambda")
        cloudwatch = self.aws(config, "cloudwatch")
        deployed = self.state(config).migration().forward_engine
        name = deployed.get("function_name", config.lambda_function_name)

        def facts() -> dict[str, Any]:
            return lambda_engine.lambda_lag_facts(client, cloudwatch, name, deployed.get("mapping_uuid"), now())

        def drained_through() -> dt.datetime | None:
            current = facts()
            if current.get("state") != "Enabled":
                return None
            # No IteratorAge datapoint in the window: nothing was waiting to be read.
            return now() - dt.timedelta(seconds=current.get("iterator_age_seconds") or 0)

        def switch(enabled: bool) -> None:
            lambda_engine.ensure_event_source_mapping(client, config, stream_arn, name, enabled=enabled)

        return Switches(
            stop=lambda: switch(False),
            start=lambda: switch(True),
            stopped=lambda: facts().get("state") == "Disabled",
            drained_through=drained_through,
            newest_independent=lambda: (read_heartbeat(meta, config.name, FORWARD) or {}).get("newest_independent"),
        )

    def _dms_switches(self, config: TableConfig) -> Switches:
        dms = self.aws(config, "dms")
        return Switches(
            stop=lambda: dms_engine.stop_task(dms, config.dms, config),
            start=lambda: dms_engine.resume_task(dms, config.dms, config),
            stopped=lambda: dms_engine.task_status(dms, config.dms, config).status in ("stopped", "failed"),
            drained_through=lambda: now() - DMS_SETTLE,
            newest_independent=lambda: None,
        )

    def run(self, config: TableConfig, context: Context) -> dict[str, Any]:
        if self.operation not in OPERATIONS:
            raise AirflowFailException(f"operation must be one of {', '.join(OPERATIONS)}, got {self.operation!r}")
        refusal = confirmation_refusal(self.operation, self.confirm, config.name)
        if refusal:
            raise AirflowFailException(refusal)
        meta = self.mongo(config)[config.metadata_database]
        stream_arn = self.state(config).migration().stream_arn
        timeout = config.sync.heartbeat_timeout_seconds
        forward = (
            relay_switches(meta, config.name, FORWARD, stream_arn, timeout)
            if config.sync.forward == "relay"
            else self._lambda_switches(config, meta, stream_arn)
        )
        backward = (
            relay_switches(meta, config.name, BACKWARD, heartbeat_timeout=timeout)
            if config.sync.backward == "relay"
            else self._dms_switches(config)
        )
        operations = Operations(meta, config.name, forward, backward)
        try:
            if self.operation == "cut_over":
                facts = operations.cut_over()
            elif self.operation == "rollback":
                facts = operations.rollback(resume_forward=_flag(self.resume_forward))
            else:
                facts = operations.finish(
                    self.mongo(config)[config.database][config.collection],
                    self.aws(config, "dynamodb"),
                    config.source_table,
                    strip_metadata=_flag(self.strip_metadata),
                    disable_stream=_flag(self.disable_stream),
                )
        except OperationRefused as error:
            raise AirflowFailException(f"{self.operation} of {config.name} refused: {error}") from error
        self.log.info("%s of %s: %s", self.operation, config.name, facts)
        return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in facts.items()}


def confirmation_refusal(operation: str, confirm: str | None, table: str) -> str | None:
    """Why ``operation`` may not run with ``confirm`` typed, or ``None`` when it may."""
    if operation not in CONFIRMED or confirm is None:
        return None
    if confirm.strip() == table:
        return None
    typed = f"got {confirm.strip()!r}" if confirm.strip() else "it was left empty"
    return f"{operation} of {table} refused: type the table's name {table!r} in 'confirm' to run it ({typed})"


def _flag(value: Any) -> bool:
    # Rendered templates arrive as text.
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1", "yes")
