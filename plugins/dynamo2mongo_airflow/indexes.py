"""Deferred index creation (DESIGN §5). Safe to clear and retry at any point."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from dynamo2mongo.config import TableConfig
from dynamo2mongo.finish.indexes import (
    IndexBuildFailed,
    IndexConflict,
    IndexPlanError,
    PlannedIndex,
    build_indexes,
    check_indexes,
    plan_indexes,
)
from dynamo2mongo.prepare.table import describe_table
from dynamo2mongo_airflow.base import TableOperator


def _recorded(planned: PlannedIndex) -> dict[str, Any]:
    # The partial filter's "$exists" keys cannot be stored as field names in the state document.
    return {
        "name": planned.name,
        "key": [list(k) for k in planned.key],
        "unique": planned.unique,
        "partial_on": list(planned.sparse_fields),
        "serves": list(planned.serves),
    }


class CreateIndexesOperator(TableOperator):
    """Create the MongoDB indexes that mirror the table's primary key, LSIs and GSIs, then check them.

    Plans from a fresh DescribeTable rather than the preflight's facts: indexes come after the full
    load, possibly days later, and a GSI added or deleted meanwhile must be mirrored as the table is
    now. Builds the missing indexes one at a time with progress in the log, keeps equal ones, and
    fails before building anything when another index stands in the way. Then compares the
    collection with the plan and fails listing every difference. Records ``indexes`` in the migration
    state; pushes the plan (one ``spec()`` per index).
    """

    def run(self, config: TableConfig, context: Context) -> list[dict[str, Any]]:
        collection = self.mongo(config)[config.database][config.collection]
        state = self.state(config)
        try:
            plan = plan_indexes(
                describe_table(self.aws(config, "dynamodb"), config.source_table), config.indexes.esr_sort_fields
            )
            self.log.info(
                "index plan for %s (%s):\n  %s",
                collection.full_name,
                config.source_table,
                "\n  ".join(p.describe() for p in plan),
            )
            outcomes = build_indexes(collection, plan)
        except (IndexPlanError, IndexConflict, IndexBuildFailed) as error:
            state.update_migration(indexes={"run_id": context["run_id"], "error": str(error)})
            raise AirflowFailException(f"indexes of {config.name}: {error}") from error
        differences = check_indexes(collection, plan)
        state.update_migration(
            indexes={
                "run_id": context["run_id"],
                "plan": [_recorded(p) for p in plan],
                "outcomes": outcomes,
                "differences": differences,
            }
        )
        if differences:
            raise AirflowFailException(
                f"indexes of {config.name} on {collection.full_name} differ from the plan after the build:\n  "
                + "\n  ".join(differences)
                + "\nFix each as it says, then clear this task"
            )
        self.log.info("indexes of %s match the plan: %s", collection.full_name, ", ".join(p.name for p in plan))
        return [p.spec() for p in plan]
