"""The plan, pools and on-call sections of the table configuration, and the plan's decisions."""

import pytest

from dynamo2mongo.config import ConfigError, PoolsConfig, parse_document
from dynamo2mongo.state import Migration
from dynamo2mongo.operations.plan import (
    full_load_risk,
    gate,
    milestone_uri,
    next_action,
    pool_specs,
    pools_import_document,
    pools_set_commands,
    trigger_description,
)


def table(name, **extra):
    return {"name": name, "source_table": f"{name}-table", "database": "shop", "collection": name,
            "export": {"s3_bucket": "b"}, **extra}


def document(plan=None, tables=("orders", "users", "payments"), **top):
    doc = {"tables": [t if isinstance(t, dict) else table(t) for t in tables], **top}
    if plan is not None:
        doc["plan"] = plan
    return doc


def test_no_plan_and_no_pools_by_default():
    configuration = parse_document(document())
    assert configuration.plan.waves == ()
    assert configuration.pools is None
    assert configuration.plan.waits_for("users") is None


def test_waves_with_default_and_overridden_milestones():
    plan = {"start_after": "full_load_done",
            "waves": [["orders", "users"], "payments", {"tables": ["invoices"], "start_after": "forward_caught_up"}]}
    configuration = parse_document(document(plan, tables=("orders", "users", "payments", "invoices", "other")))
    waves = configuration.plan.waves
    assert [w.tables for w in waves] == [("orders", "users"), ("payments",), ("invoices",)]
    assert [w.start_after for w in waves] == [None, "full_load_done", "forward_caught_up"]
    assert configuration.plan.wave_of("invoices") == 3
    assert configuration.plan.wave_of("other") is None
    assert configuration.plan.waits_for("orders") is None
    assert configuration.plan.waits_for("payments") == (1, ("orders", "users"), "full_load_done")
    assert configuration.plan.waits_for("invoices") == (2, ("payments",), "forward_caught_up")


def test_start_after_defaults_to_full_load_done():
    configuration = parse_document(document({"waves": [["orders"], ["users"]]}))
    assert configuration.plan.waits_for("users") == (1, ("orders",), "full_load_done")


def test_first_wave_keeps_its_schedule():
    configuration = parse_document(document({"waves": [["orders"], ["users"]]},
                                            tables=(table("orders", schedule="0 2 * * *"), "users")))
    assert configuration.table("orders").schedule == "0 2 * * *"


@pytest.mark.parametrize(
    "plan, message",
    [
        ([["orders"]], "'plan' must be a mapping with 'waves'"),
        ({"wave": [["orders"]]}, "'plan': unknown key 'wave'; did you mean 'waves'? allowed keys: start_after, waves"),
        ({"waves": []}, "'plan.waves' must be a non-empty list"),
        ({"waves": [["orders"], []]}, "wave 2: must be a table name, a non-empty list"),
        ({"waves": [["orders"], [3]]}, "wave 2: must be a table name, a non-empty list"),
        ({"waves": [["orders"], ["paymnts"]]},
         "'plan.waves' wave 2 names table 'paymnts', which is not in 'tables'; known: orders, users, payments"),
        ({"waves": [["orders", "orders"]]}, "lists table 'orders' twice in wave 1"),
        ({"waves": [["orders"], ["users"], ["orders"]]},
         "lists table 'orders' in wave 1 and wave 3: it would wait for its own milestone (a cycle)"),
        ({"waves": [{"tables": ["orders"], "start_after": "full_load_done"}]},
         "wave 1: 'start_after' applies from wave 2 on"),
        ({"waves": [["orders"], {"tables": ["users"], "start_after": "exported"}]},
         "wave 2: 'start_after' must be one of full_load_done, forward_caught_up, got 'exported'"),
        ({"start_after": "done", "waves": [["orders"]]}, "'plan.start_after' must be one of"),
        ({"waves": [["orders"], {"table": ["users"]}]}, "wave 2: unknown key 'table'"),
        ({"waves": [["orders"], {"start_after": "full_load_done"}]}, "wave 2: missing required key 'tables'"),
    ],
)
def test_plan_errors_say_what_to_fix(plan, message):
    with pytest.raises(ConfigError) as error:
        parse_document(document(plan), "tables.yaml")
    assert message in str(error.value)
    assert str(error.value).startswith("tables.yaml: ")


def test_a_later_wave_table_cannot_have_its_own_schedule():
    with pytest.raises(ConfigError, match=(
        r"table 'users': 'schedule' must be null: the table is in wave 2 of the plan, which starts it when wave 1 "
        r"\(orders\) reaches full_load_done")):
        parse_document(document({"waves": [["orders"], ["users"]]}, tables=("orders", table("users", schedule="@daily"))))


def test_a_default_schedule_reaches_later_waves_too():
    with pytest.raises(ConfigError, match="table 'users': 'schedule' must be null"):
        parse_document(document({"waves": [["orders"], ["users"]]}, tables=("orders", "users"),
                                defaults={"schedule": "@daily"}))


def test_pools():
    assert parse_document(document(pools={})).pools == PoolsConfig(exports=2, imports=8)
    assert parse_document(document(pools=None)).pools == PoolsConfig()
    assert parse_document(document(pools={"exports": 1, "imports": 20})).pools == PoolsConfig(1, 20)
    for pools, message in [
        ({"exports": 0}, "'pools.exports' must be a whole number of slots between 1 and 10000, got 0"),
        ({"imports": "8"}, "'pools.imports' must be a whole number of slots"),
        ({"imports": True}, "'pools.imports' must be a whole number of slots"),
        ({"loads": 3}, "'pools': unknown key 'loads'; allowed keys: exports, imports"),
        ([2, 8], "'pools' must be a mapping"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_document(document(pools=pools))


def test_unknown_top_level_key_lists_the_new_keys():
    with pytest.raises(ConfigError, match="unknown top-level key 'plans'; allowed: defaults, tables, plan, pools"):
        parse_document(document(plans={}))


def test_on_call_defaults_and_errors():
    (config,) = parse_document(document(tables=("orders",))).tables
    assert (config.on_call.retries, config.on_call.retry_delay_seconds, config.on_call.max_retry_delay_seconds,
            config.on_call.full_load_deadline_hours) == (3, 30, 600, 12)
    (silent,) = parse_document(document(tables=(table("orders", on_call={"full_load_deadline_hours": None}),))).tables
    assert silent.on_call.full_load_deadline_hours is None
    for on_call, message in [
        ({"full_load_deadline_hours": "12"}, "'on_call.full_load_deadline_hours' must be int, got str"),
        ({"retries": -1}, "'on_call.retries' must be between 0 and 20"),
        ({"retry_delay_seconds": 60, "max_retry_delay_seconds": 30},
         "'on_call.max_retry_delay_seconds' \\(30\\) must be at least 'on_call.retry_delay_seconds' \\(60\\)"),
        ({"full_load_deadline_hours": 18},
         "table 'orders': 'on_call.full_load_deadline_hours' \\(18\\) must be below 'sync.retention_alarm_hours' \\(18\\)"),
        ({"deadline": 3}, "section 'on_call': unknown key 'deadline'"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_document(document(tables=(table("orders", on_call=on_call),)))


def test_trigger_and_next_action_in_words():
    configuration = parse_document(document({"waves": [["orders", "users"], ["payments"]]},
                                            tables=(table("orders", schedule="0 2 * * *"), "users", "payments")))
    plan = configuration.plan
    orders, users, payments = configuration.tables
    assert trigger_description(plan, orders) == "schedule 0 2 * * *"
    assert trigger_description(plan, users) == "manual trigger"
    assert trigger_description(plan, payments) == "after wave 1 (orders, users) reaches full_load_done"
    assert next_action(plan, payments, Migration({})) == "after wave 1 (orders, users) reaches full_load_done"
    assert (next_action(plan, payments, Migration({"phase": "exported", "last_run_id": "r1"}))
            == "full load of run r1 in progress")
    assert "cut_over" in next_action(plan, payments, Migration({"phase": "forward_caught_up"}))
    # Cut-over refuses without a backward relay: the hint says so instead of suggesting it.
    down = next_action(plan, payments, Migration({"phase": "forward_caught_up"}), "it has not started")
    assert down.startswith("start the backward relay (it has not started") and "refuses without it" in down
    assert "dynamo2mongo__payments__operations" in next_action(plan, payments, Migration({"phase": "cut_over"}))
    assert next_action(plan, payments, Migration({"phase": "finished"})).startswith("none")
    assert "clear reconcile" in next_action(plan, payments,
                                            Migration({"phase": "full_load_mismatch", "last_run_id": "r1"}))


def test_milestone_uri():
    assert milestone_uri("orders", "full_load_done") == "dynamo2mongo://orders/full_load_done"
    with pytest.raises(ValueError):
        milestone_uri("orders", "exported")


@pytest.mark.parametrize(
    "migration, run_id, run_type, action",
    [
        ({}, "r1", "asset_triggered", "run"),
        ({}, "r1", "scheduled", "run"),
        ({}, "r1", "manual", "run"),
        # An upstream wave's milestone again (its run was cleared) or the next schedule tick: no second load.
        ({"phase": "full_load_done", "last_run_id": "r1"}, "r2", "asset_triggered", "skip"),
        ({"phase": "forward_caught_up", "last_run_id": "r1"}, "r2", "scheduled", "skip"),
        ({"phase": "rolled_back", "last_run_id": "r1", "writer": "dynamodb"}, "r2", "scheduled", "skip"),
        # The same run, cleared: it resumes.
        ({"phase": "forward_caught_up", "last_run_id": "r1"}, "r1", "asset_triggered", "run"),
        ({"phase": "exported", "last_run_id": "r1"}, "r2", "asset_triggered", "run"),
        # A deliberate run redoes the full load (the runbook's answer to trimmed stream records).
        ({"phase": "forward_caught_up", "last_run_id": "r1"}, "r2", "manual", "run"),
        ({"phase": "rolled_back", "last_run_id": "r1"}, "r2", "backfill", "run"),
        # After a cut-over a full load would overwrite the new application's writes.
        ({"phase": "cut_over", "writer": "mongodb", "last_run_id": "r1"}, "r1", "manual", "refuse"),
        ({"phase": "finished", "writer": "mongodb", "last_run_id": "r1"}, "r2", "manual", "refuse"),
        ({"phase": "cut_over", "writer": "mongodb", "last_run_id": "r1"}, "r2", "asset_triggered", "skip"),
    ],
)
def test_gate(migration, run_id, run_type, action):
    decision = gate("orders", Migration(migration), run_id, run_type)
    assert decision.action == action, decision.reason
    assert "'orders'" in decision.reason


def test_gate_reasons_say_what_to_do():
    assert "Roll back first" in gate("orders", Migration({"phase": "cut_over", "writer": "mongodb"}), "r",
                                     "manual").reason
    assert "Trigger the DAG by hand" in gate("orders", Migration({"phase": "full_load_done", "last_run_id": "a"}), "b",
                                             "scheduled").reason


def test_full_load_risk():
    (config,) = parse_document(document(tables=("orders",))).tables
    assert full_load_risk(config, Migration({"phase": "forward_caught_up"}), "r1") is None
    assert full_load_risk(config, Migration({"phase": "cut_over"}), "r1") is None
    alert = full_load_risk(config, Migration({"phase": "exported"}), "r1")
    assert "table 'orders': run r1 has not caught up with the stream 12 h after it was queued (phase exported)" in alert
    assert "gives up at 18 h" in alert
    assert "phase not started" in full_load_risk(config, Migration({}), "r1")


def test_pool_commands_and_import_document():
    specs = pool_specs(PoolsConfig(exports=2, imports=8))
    assert pools_set_commands(specs) == [
        "airflow pools set dynamo2mongo_exports 2 'dynamo2mongo: point-in-time exports running at once' "
        "--include-deferred",
        "airflow pools set dynamo2mongo_imports 8 'dynamo2mongo: export files converted or imported at once'",
    ]
    assert pools_import_document(specs) == {
        "dynamo2mongo_exports": {"slots": 2, "description": "dynamo2mongo: point-in-time exports running at once",
                                 "include_deferred": True},
        "dynamo2mongo_imports": {"slots": 8, "description": "dynamo2mongo: export files converted or imported at once",
                                 "include_deferred": False},
    }
