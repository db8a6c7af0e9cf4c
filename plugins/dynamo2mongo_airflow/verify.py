"""Verification of both sides (DESIGN §2). Safe to clear and retry: a retry replaces its run's report."""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from dynamo2mongo.state import WRITER_MONGODB
from dynamo2mongo.sync.checkpoints import now, relay_beat
from dynamo2mongo.config import TableConfig
from dynamo2mongo.sync.lag import applied_through
from dynamo2mongo.finish.verify import VERIFICATIONS, recheck, store_report, verify
from dynamo2mongo_airflow.base import TableOperator

# Examples and the field-by-field difference can be large and hold BSON values: they stay in the
# stored report, out of XCom.
_NOT_IN_XCOM = ("examples", "field_diff", "at")


class VerifyOperator(TableOperator):
    """Compare the DynamoDB table with the collection item by item (content hash), in full or sampled.

    Stores the report in the ``verifications`` collection of the metadata database (``_id``:
    ``{table, run_id}``), logs it, pushes its counts, and fails naming counts and examples when the
    differences exceed ``tolerance``. On a table that takes writes, an item written between the
    DynamoDB scan and the MongoDB lookup counts as different until forward sync applies it: verify
    when lag is low and size ``tolerance`` for the write rate.

    :param sample_fraction: share of the table to compare (0 < fraction < 1), or None for all of it.
    :param tolerance: differences accepted before the task fails.
    :param examples: keys kept per kind of difference (missing, extra, different, unreadable).
    :param segments: parallel DynamoDB scan segments.
    """

    def __init__(
        self,
        *,
        sample_fraction: float | None = None,
        tolerance: int = 0,
        examples: int = 10,
        segments: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if sample_fraction is not None and not 0 < sample_fraction <= 1:
            raise ValueError(f"{self.task_id}: sample_fraction must be above 0 and at most 1, got {sample_fraction}")
        if tolerance < 0 or examples < 0 or segments < 1:
            raise ValueError(
                f"{self.task_id}: tolerance and examples must be 0 or more and segments 1 or more, "
                f"got {tolerance}, {examples}, {segments}"
            )
        self.sample_fraction = sample_fraction
        self.tolerance = tolerance
        self.examples = examples
        self.segments = segments

    def run(self, config: TableConfig, context: Context) -> dict[str, Any]:
        dynamodb = self.aws(config, "dynamodb")
        key_attrs = self.table_key(config, self.state(config).migration()).attrs
        collection = self.mongo(config)[config.database][config.collection]
        began = now()
        report = verify(
            dynamodb,
            config.source_table,
            key_attrs,
            collection,
            sample_fraction=self.sample_fraction,
            segments=self.segments,
            examples=self.examples,
        )
        beat = relay_beat(self.mongo(config)[config.metadata_database], config.name, "forward")
        # Differences are re-checked only while forward sync applies writes: then they may be in flight.
        if report.differences and (config.sync.forward != "relay" or (beat is not None and beat.applying)):
            self.log.info("%s\nre-checking the differing keys once forward sync has applied every earlier write",
                          report.describe())
            report = recheck(dynamodb, config.source_table, key_attrs, collection, report,
                             settle=lambda: self._settle(config, began), examples=self.examples)
        store_report(self.mongo(config)[config.metadata_database], config.name, context["run_id"], report)
        self.log.info("%s", report.describe())
        if report.differences > self.tolerance:
            raise AirflowFailException(
                f"verification of {config.name} found {report.differences} difference(s), more than the tolerance "
                f"of {self.tolerance}. {report.describe()}\nThe full report is in "
                f"{config.metadata_database}.{VERIFICATIONS} (_id {{table: {config.name!r}, run_id: "
                f"{context['run_id']!r}}}). Differences that are writes in flight go away: clear this task once "
                f"forward lag is low. Others need the examples looked up on both sides before cut-over"
            )
        summary = {k: v for k, v in report.summary().items() if k not in _NOT_IN_XCOM}
        return {**summary, "tolerance": self.tolerance}

    def _settle(self, config: TableConfig, began: Any) -> None:
        """Wait (bounded) until forward sync has applied everything written before the first pass.

        On a table that takes writes, a difference is most often a write in flight; once forward sync
        is past the moment the comparison began, a difference that remains is not one.
        """
        meta = self.mongo(config)[config.metadata_database]
        beat = relay_beat(meta, config.name, "forward")
        if config.sync.forward == "relay" and (beat is None or not beat.applying):
            return  # no relay applying anything: nothing to wait for, the differences stand
        stream = self.state(config).migration().stream_arn
        deadline = time.monotonic() + max(60, 3 * config.sync.lag_threshold_seconds)
        while time.monotonic() < deadline:
            if config.sync.forward != "relay" or self.state(config).migration().writer == WRITER_MONGODB:
                # No per-shard position to wait for (Lambda), or forward sync is stopped (after a cut-over).
                time.sleep(min(config.sync.lag_threshold_seconds, 30))
                return
            through = applied_through(meta, config.name, stream)
            if through is not None and through > began:
                return
            time.sleep(1)
