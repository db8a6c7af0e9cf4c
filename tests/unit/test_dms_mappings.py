"""DMS backward sync, the pure parts: table mappings, task settings, identifiers and the MongoDB source."""

import json
import re

import pytest

from dynamo2mongo.engines import dms as dms_engine
from dynamo2mongo.config import DmsConfig, ExportConfig, TableConfig
from dynamo2mongo.mapping.keys import key_fields

CONFIG = TableConfig(name="orders", source_table="Orders", database="shop", collection="orders", export=ExportConfig(s3_bucket="b"))
# The rule fields the AWS DMS User Guide documents for selection and DynamoDB object-mapping rules.
SELECTION_FIELDS = {"rule-type", "rule-id", "rule-name", "object-locator", "rule-action", "filters"}
OBJECT_MAPPING_FIELDS = {"rule-type", "rule-id", "rule-name", "rule-action", "object-locator", "target-table-name", "mapping-parameters"}
MAPPING_PARAMETERS = {"partition-key-name", "sort-key-name", "exclude-columns", "attribute-mappings"}
ATTRIBUTE_MAPPING_FIELDS = {"target-attribute-name", "attribute-type", "attribute-sub-type", "value"}
FILTER_OPERATORS = {"lte", "ste", "gte", "eq", "noteq", "between", "notbetween", "null", "notnull"}
# DMS identifiers: a letter first, then letters, digits and single hyphens, no hyphen at the end.
IDENTIFIER = re.compile(r"^[A-Za-z](?:[A-Za-z0-9]|-(?!-))*(?<!-)$")


def rules(mappings):
    by_type = {}
    for rule in mappings["rules"]:
        by_type.setdefault(rule["rule-type"], []).append(rule)
    return by_type


def check_documented_shape(mappings):
    assert json.loads(json.dumps(mappings)) == mappings
    ids = [r["rule-id"] for r in mappings["rules"]]
    assert len(set(ids)) == len(ids) and all(isinstance(i, str) for i in ids)
    by_type = rules(mappings)
    assert set(by_type) == {"selection", "object-mapping"}
    (selection,), (mapping,) = by_type["selection"], by_type["object-mapping"]
    assert set(selection) <= SELECTION_FIELDS and set(mapping) <= OBJECT_MAPPING_FIELDS
    assert selection["rule-action"] == "include"
    assert mapping["rule-action"] == "map-record-to-record"
    assert selection["object-locator"] == mapping["object-locator"] == {"schema-name": "shop", "table-name": "orders"}
    assert mapping["target-table-name"] == "Orders"
    assert set(mapping["mapping-parameters"]) <= MAPPING_PARAMETERS
    for attribute in mapping["mapping-parameters"]["attribute-mappings"]:
        assert set(attribute) == ATTRIBUTE_MAPPING_FIELDS
    for source_filter in selection["filters"]:
        assert source_filter["filter-type"] == "source"
        assert {c["filter-operator"] for c in source_filter["filter-conditions"]} <= FILTER_OPERATORS
    return selection, mapping


def test_hash_only_string_key():
    selection, mapping = check_documented_shape(dms_engine.table_mappings(CONFIG, ("pk",), {"pk": "S"}))
    parameters = mapping["mapping-parameters"]
    assert parameters["partition-key-name"] == "pk"
    assert "sort-key-name" not in parameters
    assert parameters["attribute-mappings"] == [
        {"target-attribute-name": "pk", "attribute-type": "scalar", "attribute-sub-type": "string", "value": "${pk}"}
    ]
    excluded = set(parameters["exclude-columns"])
    assert "_id" in excluded and not any(c.startswith("_id.") for c in excluded)
    assert {"_ddb.t", "_ddb.sync.src", "_ddb.sync.h", "_ddb.sync.seq", "_ddb.sync.at"} <= excluded


def test_forward_synced_documents_are_filtered_out_and_unmarked_ones_kept():
    selection, _ = check_documented_shape(dms_engine.table_mappings(CONFIG, ("pk",), {"pk": "S"}))
    # A negative operator would also drop documents without the mark (NULL never compares unequal).
    assert selection["filters"] == [
        {"filter-type": "source", "column-name": "_ddb.sync.src", "filter-conditions": [{"filter-operator": "null"}]}
    ]


def test_composite_key_maps_hash_and_range():
    _, mapping = check_documented_shape(dms_engine.table_mappings(CONFIG, ("pk", "sk"), {"pk": "S", "sk": "S"}))
    parameters = mapping["mapping-parameters"]
    assert (parameters["partition-key-name"], parameters["sort-key-name"]) == ("pk", "sk")
    assert [a["value"] for a in parameters["attribute-mappings"]] == ["${pk}", "${sk}"]
    # A composite _id is a sub-document, which table mode flattens into one column per field.
    assert {"_id", "_id.pk", "_id.sk"} <= set(parameters["exclude-columns"])


def test_number_key_keeps_its_column_type():
    _, mapping = check_documented_shape(dms_engine.table_mappings(CONFIG, ("pk", "sk"), {"pk": "S", "sk": "N"}))
    parameters = mapping["mapping-parameters"]
    assert parameters["sort-key-name"] == "sk"
    assert [a["target-attribute-name"] for a in parameters["attribute-mappings"]] == ["pk"]
    assert "sk" not in parameters["exclude-columns"]


def test_key_names_are_read_from_their_stored_columns():
    key_attrs = ("order.id", "$rev")
    _, mapping = check_documented_shape(dms_engine.table_mappings(CONFIG, key_attrs, {"order.id": "S", "$rev": "S"}))
    stored = key_fields(key_attrs)
    assert stored != key_attrs
    assert [(a["target-attribute-name"], a["value"]) for a in mapping["mapping-parameters"]["attribute-mappings"]] == [
        (key_attrs[0], "${" + stored[0] + "}"),
        (key_attrs[1], "${" + stored[1] + "}"),
    ]


def test_binary_key_is_refused_with_the_way_out():
    with pytest.raises(dms_engine.DmsError, match=r"table 'orders': key attribute 'sk' is binary.*sync.backward: relay"):
        dms_engine.table_mappings(CONFIG, ("pk", "sk"), {"pk": "S", "sk": "B"})


def test_task_settings_never_touch_the_target_table_and_log():
    settings = dms_engine.task_settings()
    assert settings["FullLoadSettings"]["TargetTablePrepMode"] == "DO_NOTHING"
    assert settings["Logging"]["EnableLogging"] is True
    assert settings["ErrorBehavior"]["DataErrorPolicy"] == "STOP_TASK"
    assert json.loads(json.dumps(settings)) == settings


@pytest.mark.parametrize("name", ["orders", "orders_v2.eu", "9lives", "a--b", "x" * 300])
def test_identifiers_are_valid_and_distinct(name):
    config = TableConfig(name=name, source_table="Orders", database="shop", collection="o", export=ExportConfig(s3_bucket="b"))
    settings = DmsConfig()
    ids = {role: dms_engine.identifier(settings, config, role) for role in ("mongodb-source", "dynamodb-target", "backward")}
    for value in ids.values():
        assert IDENTIFIER.match(value) and len(value) <= 255, value
    assert len(set(ids.values())) == 3


def test_names_that_clean_up_alike_stay_apart():
    def task_id(name):
        config = TableConfig(name=name, source_table="Orders", database="shop", collection="o", export=ExportConfig(s3_bucket="b"))
        return dms_engine.identifier(DmsConfig(), config, "backward")

    assert task_id("orders") == "dynamo2mongo-orders-backward"
    assert task_id("a_b") != task_id("a.b")


def test_mongo_source_from_a_replica_set_uri():
    source = dms_engine.mongo_source(
        "mongodb://app%40corp:s3cr%3At@db1.example:27017,db2.example:27018/shop?replicaSet=rs0&authSource=users", {}, "orders"
    )
    assert (source.host, source.port, source.username, source.password) == ("db1.example", 27017, "app@corp", "s3cr:t")
    assert (source.auth_source, source.auth_mechanism, source.tls) == ("users", "default", False)
    assert "s3cr" not in repr(source)
    assert json.loads(source.secret_string()) == {"host": "db1.example", "port": 27017, "username": "app@corp", "password": "s3cr:t"}


def test_connection_extras_count_and_auth_source_defaults_to_the_uri_database():
    source = dms_engine.mongo_source("mongodb://u:p@h/shop", {"tls": True, "authMechanism": "SCRAM-SHA-1"}, "orders")
    assert (source.auth_source, source.auth_mechanism, source.tls, source.port) == ("shop", "scram_sha_1", True, 27017)


def test_mongo_source_without_credentials():
    source = dms_engine.mongo_source("mongodb://127.0.0.1:27017", {}, "orders")
    assert source.username is None
    assert json.loads(source.secret_string()) == {"host": "127.0.0.1", "port": 27017}


def test_mechanisms_dms_lacks_are_refused():
    with pytest.raises(dms_engine.DmsError, match="SCRAM-SHA-256.*SCRAM-SHA-1 user for DMS"):
        dms_engine.mongo_source("mongodb://u:p@h/?authMechanism=SCRAM-SHA-256", {}, "orders")


def test_a_broken_uri_error_does_not_repeat_the_uri():
    with pytest.raises(dms_engine.DmsError) as raised:
        dms_engine.mongo_source("mongodb://user:hunter2@", {}, "orders")
    assert "hunter2" not in str(raised.value)
    assert "table 'orders'" in str(raised.value)
