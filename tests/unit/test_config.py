import pytest

from dynamo2mongo.config import ConfigError, load_config, parse_config, parse_document
from dynamo2mongo.mapping import BsonMapping

BASE = {
    "name": "orders",
    "source_table": "Orders",
    "database": "shop",
    "collection": "orders",
    "export": {"s3_bucket": "bucket"},
}


def table(**changes):
    raw = {**BASE, **changes}
    return {"tables": [raw]}


def test_minimal_table_gets_safe_defaults():
    (config,) = parse_config(table())
    assert config.dag_id == "dynamo2mongo__orders"
    assert config.export.format == "ION"
    assert config.export.enable_pitr is False
    assert config.imports.write_concern == "majority"
    assert config.number_mapping == "lossless"
    assert config.sync.bson_mapping == BsonMapping("iso8601", "hex")


def test_the_bson_mapping_is_chosen_per_table():
    other = {**BASE, "name": "customers", "sync": {"bson_dates": "epoch_millis", "bson_object_ids": "reject"}}
    orders, customers = parse_config({"tables": [BASE, other]})
    assert orders.sync.bson_mapping == BsonMapping()
    assert customers.sync.bson_mapping == BsonMapping(dates="epoch_millis", object_ids="reject")
    assert orders.with_overrides(**{"sync.bson_dates": "reject"}).sync.bson_mapping.dates == "reject"


def test_notification_targets_hear_quarantine_events():
    document = {"tables": [BASE], "monitor": {"notify": [{"kind": "slack"}, {"kind": "slack", "events": ["quarantine"]}]}}
    every, quarantine_only = parse_document(document).monitor.notify
    assert every.hears("quarantine", "orders") and every.hears("quarantine_cleared", "orders")
    assert quarantine_only.hears("quarantine", "orders") and not quarantine_only.hears("quarantine_cleared", "orders")


def test_defaults_merge_into_nested_sections():
    (config,) = parse_config({"defaults": {"export": {"s3_bucket": "shared", "format": "DYNAMODB_JSON"}}, "tables": [
        {k: v for k, v in BASE.items() if k != "export"} | {"export": {"s3_prefix": "p"}}]})
    assert (config.export.s3_bucket, config.export.format, config.export.s3_prefix) == ("shared", "DYNAMODB_JSON", "p")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"colection": "x"}, "table 'orders': unknown key 'colection'; did you mean 'collection'?"),
        ({"export": {"s3_bucket": "b", "fromat": "ION"}}, "section 'export': unknown key 'fromat'"),
        ({"export": {"format": "ION"}}, "missing required key 's3_bucket'"),
        ({"export": {"s3_bucket": "b", "format": "CSV"}}, "'export.format' must be one of ION, DYNAMODB_JSON, got 'CSV'"),
        ({"sync": {"conflict_policy": "app_wins"}}, "'sync.conflict_policy' must be one of"),
        ({"sync": {"bson_dates": "unix"}}, "'sync.bson_dates' must be one of iso8601, epoch_millis, reject, got 'unix'"),
        ({"sync": {"bson_object_ids": "base64"}}, "'sync.bson_object_ids' must be one of hex, reject, got 'base64'"),
        ({"imports": {"batch_size": 0}}, "'imports.batch_size' must be between 1 and 100000, got 0"),
        ({"imports": {"batch_size": "100"}}, "'imports.batch_size' must be int, got str"),
        ({"export": {"s3_bucket": "b", "enable_pitr": "yes"}}, "'export.enable_pitr' must be bool"),
        ({"database": "sh.op"}, "'database' 'sh.op' is not a valid MongoDB name"),
        ({"source_table": "x"}, "'source_table' 'x' is not a valid DynamoDB table name"),
        ({"name": "bad name"}, "'name' may hold letters"),
        ({"export": {"s3_bucket": "b", "s3_prefix": "/abs"}}, "must not start or end with '/'"),
        ({"indexes": {"esr_sort_fields": {"gsi": 3}}}, "must map index names to field names"),
    ],
)
def test_errors_name_table_and_key(changes, message):
    with pytest.raises(ConfigError) as error:
        parse_config(table(**changes))
    assert message in str(error.value)


def test_missing_required_field_is_named():
    raw = dict(BASE)
    del raw["collection"]
    with pytest.raises(ConfigError, match="table 'orders': missing required key 'collection'"):
        parse_config({"tables": [raw]})


def test_duplicate_table_names_rejected():
    with pytest.raises(ConfigError, match="listed twice"):
        parse_config({"tables": [BASE, BASE]})


def test_top_level_shape_is_checked():
    with pytest.raises(ConfigError, match="unknown top-level key 'table'"):
        parse_config({"table": []})
    with pytest.raises(ConfigError, match="'tables' must be a non-empty list"):
        parse_config({"tables": []})


def test_overrides_are_validated_again():
    (config,) = parse_config(table())
    changed = config.with_overrides(**{"export.format": "DYNAMODB_JSON", "imports.batch_size": 50, "sync.forward": None})
    assert (changed.export.format, changed.imports.batch_size) == ("DYNAMODB_JSON", 50)
    with pytest.raises(ConfigError, match="'export.format' must be one of"):
        config.with_overrides(**{"export.format": "XML"})


def test_shipped_config_is_valid():
    names = [t.name for t in load_config()]
    assert "sample_orders" in names


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read table configuration"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tables: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_shipped_schema_is_the_one_the_models_generate():
    from pathlib import Path

    from dynamo2mongo.config.schema import render

    shipped = Path(__file__).resolve().parents[2] / "config" / "tables.schema.json"
    assert shipped.read_text() == render(), "regenerate: python -m dynamo2mongo.config.schema > config/tables.schema.json"


def test_run_params_come_from_the_declaration_and_override_the_file():
    from dynamo2mongo.config import run_params

    (config,) = parse_config(table(sync={"lag_threshold_seconds": 30}))
    params = {p.name: p for p in run_params(config)}
    assert set(params) == {"export_format", "import_batch_size", "lag_threshold_seconds"}
    lag = params["lag_threshold_seconds"]
    assert (lag.key, lag.default, lag.schema) == ("sync.lag_threshold_seconds", 30,
                                                  {"type": "integer", "minimum": 1, "maximum": 43200})
    assert lag.description and params["export_format"].schema["enum"] == ["ION", "DYNAMODB_JSON"]
    run = config.with_params({"lag_threshold_seconds": 5, "export_format": None, "accept_quarantined": True})
    assert (run.sync.lag_threshold_seconds, run.export.format) == (5, "ION")
    assert type(config).from_json(run.as_json()) == run
    with pytest.raises(ConfigError, match="table 'orders': 'sync.lag_threshold_seconds' must be between 1 and 43200"):
        config.with_params({"lag_threshold_seconds": 0})
