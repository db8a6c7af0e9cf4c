"""Table-by-table plans: which table starts when, the pools they share, and when a run may (re)do a full load.

Plain Python, no Airflow import: the DAG factory turns these names into Airflow assets and pools, the
``dynamo2mongo pools`` and ``dynamo2mongo status`` commands read them, and the unit tests check them.

A plan (``plan.waves`` in the table configuration) is a list of waves. The first wave's tables start on
their own ``schedule`` (or a manual trigger); every later wave starts when each table of the previous
wave reaches its ``start_after`` milestone. A milestone is an Airflow asset that the table's DAG updates
when the milestone's task succeeds, so the dependency shows in the UI's asset graph and the scheduler
starts the next wave by itself.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from dynamo2mongo.config import MILESTONES, PlanConfig, PoolsConfig, TableConfig
from dynamo2mongo.state import WRITER_MONGODB, Migration, Phase

# The task of the migration DAG whose success is the milestone.
MILESTONE_TASKS = {Phase.FULL_LOAD_DONE: "reconcile", Phase.FORWARD_CAUGHT_UP: "wait_forward_lag"}

EXPORT_POOL = "dynamo2mongo_exports"
IMPORT_POOL = "dynamo2mongo_imports"

# Runs someone started on purpose (the trigger form, the CLI, a backfill, "materialize" on an asset),
# as opposed to a schedule tick, an upstream wave's asset event or another DAG's trigger.
DELIBERATE_RUN_TYPES = ("manual", "backfill", "asset_materialization")


def milestone_uri(table: str, milestone: str) -> str:
    """The URI of the asset that says ``table`` reached ``milestone``."""
    if milestone not in MILESTONES:
        raise ValueError(f"unknown milestone {milestone!r}; one of {', '.join(MILESTONES)}")
    return f"dynamo2mongo://{table}/{milestone}"


def trigger_description(plan: PlanConfig, table: TableConfig) -> str:
    """What starts the table's migration DAG, in words."""
    waits = plan.waits_for(table.name)
    if waits is not None:
        previous, names, milestone = waits
        return f"after wave {previous} ({', '.join(names)}) reaches {milestone}"
    return f"schedule {table.schedule}" if table.schedule else "manual trigger"


def next_action(plan: PlanConfig, table: TableConfig, migration: Migration, backward_down: str | None = None) -> str:
    """The next thing that happens to the table, for on-call: its trigger, or the step it waits for.

    ``backward_down``: why the backward relay is not running, where it is not; cut-over refuses then,
    so the step is to start it."""
    phase = migration.phase
    operations = f"{table.dag_id}__operations"
    if phase is None:
        return trigger_description(plan, table)
    if phase == Phase.FULL_LOAD_MISMATCH:
        return f"fix the files reconcile lists, then clear reconcile of run {migration.last_run_id}"
    if phase < Phase.FULL_LOAD_MISMATCH:
        return f"full load of run {migration.last_run_id} in progress"
    if phase == Phase.FULL_LOAD_DONE:
        return "wait_forward_lag: forward sync catching up"
    if phase < Phase.CUT_OVER:
        if backward_down:
            return (f"start the backward relay ({backward_down}: `dynamo2mongo relay backward --table {table.name}`), "
                    f"then cut_over ({operations}); cut-over refuses without it")
        return f"cut_over when the application is ready ({operations})"
    if phase == Phase.CUT_OVER:
        return f"finish, or rollback ({operations})"
    return "none: the migration is finished"


@dataclass(frozen=True)
class GateDecision:
    action: str  # "run", "skip" or "refuse"
    reason: str


def gate(table: str, migration: Migration, run_id: str, run_type: str) -> GateDecision:
    """Whether a migration DAG run may do the table's full load.

    A schedule tick or an upstream wave's asset event (an upstream run cleared and run again emits its
    milestone again) must not redo a full load another run finished, nor touch a table that was cut
    over: those runs are skipped. A deliberate run redoes the full load, as the runbook asks after
    trimmed stream records; it is refused only after a cut-over, where importing the export would
    overwrite the new application's writes. A cleared run finds its own progress (the state names it as
    the last run) and resumes.
    """
    phase = migration.phase
    deliberate = run_type in DELIBERATE_RUN_TYPES
    if migration.writer == WRITER_MONGODB or migration.reached(Phase.CUT_OVER):
        reason = (
            f"table {table!r} is {phase} and MongoDB is the writer: a full load would overwrite the new "
            f"application's writes. Roll back first (operation rollback of the operations DAG) to migrate it again"
        )
        return GateDecision("refuse" if deliberate else "skip", reason)
    last_run = migration.last_run_id
    if not deliberate and migration.reached(Phase.FULL_LOAD_DONE) and last_run != run_id:
        return GateDecision("skip", (
            f"table {table!r} already has a full load (phase {phase}, run {last_run}); this {run_type} run does not "
            f"redo it. Trigger the DAG by hand to redo the full load"
        ))
    return GateDecision("run", f"table {table!r}: phase {phase or 'not started'}; {run_type} run {run_id} proceeds")


def full_load_risk(table: TableConfig, migration: Migration, run_id: str) -> str | None:
    """The alert for a run that reached its deadline before forward sync caught up, or None if it has."""
    phase = migration.phase
    if migration.reached(Phase.FORWARD_CAUGHT_UP):
        return None
    return (
        f"table {table.name!r}: run {run_id} has not caught up with the stream {table.on_call.full_load_deadline_hours} h "
        f"after it was queued (phase {phase or 'not started'}). DynamoDB Streams keep changes for 24 h and the lag "
        f"sensor gives up at {table.sync.retention_alarm_hours} h: look for a stuck or failed task, raise "
        f"pools.imports or the workers if the load is merely slow, and check the forward relay"
    )


@dataclass(frozen=True)
class PoolSpec:
    name: str
    slots: int
    description: str
    # Deferred tasks hold a slot: a deferred export is still running in AWS.
    include_deferred: bool


def pool_specs(pools: PoolsConfig) -> list[PoolSpec]:
    return [
        PoolSpec(EXPORT_POOL, pools.exports, "dynamo2mongo: point-in-time exports running at once", True),
        PoolSpec(IMPORT_POOL, pools.imports, "dynamo2mongo: export files converted or imported at once", False),
    ]


def pools_set_commands(specs: list[PoolSpec]) -> list[str]:
    """``airflow pools set`` commands that create or resize the pools."""
    return [
        " ".join(["airflow", "pools", "set", spec.name, str(spec.slots), shlex.quote(spec.description)]
                 + (["--include-deferred"] if spec.include_deferred else []))
        for spec in specs
    ]


def pools_import_document(specs: list[PoolSpec]) -> dict[str, dict[str, Any]]:
    """The file ``airflow pools import`` reads: every pool in one Airflow start."""
    return {
        spec.name: {"slots": spec.slots, "description": spec.description, "include_deferred": spec.include_deferred}
        for spec in specs
    }
