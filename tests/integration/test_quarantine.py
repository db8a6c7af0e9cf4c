"""The sync quarantine against the sandbox MongoDB: one entry per table, direction and key, kept
losslessly, counted once per change, removed once the key synced; and shown by status, the CLI and the
dashboard."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from bson import Binary, Decimal128
from bson.codec_options import CodecOptions

from dynamo2mongo.sync.quarantine import Quarantine
from dynamo2mongo.state import StateStore

pytestmark = pytest.mark.integration

RECORD = {"eventID": "e1", "eventName": "MODIFY",
          "dynamodb": {"Keys": {"pk": {"S": "a"}}, "SequenceNumber": "100",
                       "NewImage": {"pk": {"S": "a"}, "$price": {"N": "1.50"}, "blob": {"B": b"\x00\xff"}},
                       "ApproximateCreationDateTime": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)}}


@pytest.fixture
def meta(mongo_client):
    name = f"quarantine_meta_{uuid.uuid4().hex[:8]}"
    # As the relays, status and the CLI read it: dates time-zone aware.
    yield mongo_client.get_database(name, codec_options=CodecOptions(tz_aware=True))
    mongo_client.drop_database(name)


def test_a_later_put_replaces_the_change_and_counts_and_a_replay_does_not(meta):
    quarantine = Quarantine(meta, "orders")
    key = {"pk": "a", "sk": 1}
    quarantine.put("backward", key, "d: a BSON Date cannot be written", {"_id": key, "n": 1}, position={"_data": "01"})
    (first,) = quarantine.entries()
    quarantine.put("backward", key, "n: inf is not a finite number", {"_id": key, "n": 2}, position={"_data": "02"})
    quarantine.put("backward", key, "n: inf is not a finite number", {"_id": key, "n": 2}, position={"_data": "02"})
    (entry,) = quarantine.entries("backward")

    assert (entry["key"], entry["direction"], entry["reason"]) == (key, "backward", "n: inf is not a finite number")
    assert (entry["raw"], entry["raw_format"], entry["position"]) == ({"_id": key, "n": 2}, "bson", {"_data": "02"})
    assert entry["count"] == 2, "the replay of position 02 is the same change"
    assert entry["first_at"] == first["first_at"] and entry["last_at"] > first["last_at"]
    assert meta["quarantine"].count_documents({}) == 1
    assert quarantine.counts() == {"forward": 0, "backward": 1}


def test_without_a_position_every_put_counts(meta):
    quarantine = Quarantine(meta, "orders")
    for _ in range(3):
        quarantine.put("forward", "a", "why", {"x": 1})
    assert [e["count"] for e in quarantine.entries()] == [3]


def test_entries_are_per_table_direction_and_exact_key(meta):
    orders, other = Quarantine(meta, "orders"), Quarantine(meta, "customers")
    orders.put("forward", {"pk": "a", "sk": 1}, "r1", RECORD, position="100")
    time.sleep(0.005)  # newest first: apart by more than the store's millisecond clock
    orders.put("forward", {"sk": 1, "pk": "a"}, "r2", RECORD, position="101")  # another _id: field order counts
    orders.put("backward", {"pk": "a", "sk": 1}, "r3", {"_id": 1})
    time.sleep(0.005)
    orders.put("forward", Decimal128("1.5"), "r4", RECORD)
    other.put("forward", {"pk": "a", "sk": 1}, "r5", RECORD)
    # The full load's bad records share the collection.
    StateStore(meta, "orders").quarantine("export-1", "data/1.json.gz", 7, "bad line", "{")

    assert orders.counts() == {"forward": 3, "backward": 1}
    assert other.counts() == {"forward": 1, "backward": 0}
    assert [e["reason"] for e in orders.entries("forward")] == ["r4", "r2", "r1"]
    assert [e["reason"] for e in orders.entries(limit=2)] == ["r4", "r3"]

    assert orders.resolve("forward", [{"pk": "a", "sk": 1}, Decimal128("1.5"), "never quarantined"]) == 2
    assert [e["reason"] for e in orders.entries()] == ["r3", "r2"]
    assert orders.resolve("backward", []) == 0
    assert other.counts()["forward"] == 1 and len(StateStore(meta, "orders").quarantined("export-1")) == 1
    with pytest.raises(ValueError, match="direction must be forward or backward, got 'sideways'"):
        orders.put("sideways", "a", "why", {})


def test_raw_values_are_kept_losslessly(meta):
    quarantine = Quarantine(meta, "orders")
    quarantine.put("forward", "a", "'$price' cannot be stored", RECORD, position="100")
    quarantine.put("forward", "b", "binary", {"b": Binary(bytes(range(16)), 4), "d": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)})
    quarantine.put("backward", "c", "not BSON", {"z": complex(1, 2)})
    quarantine.put("backward", "d", "huge", {"s": "x" * (16 * 1024 * 1024)})
    entries = {e["key"]: e for e in quarantine.entries()}

    assert entries["a"]["raw_format"] == "extjson"
    assert entries["a"]["raw"] == RECORD
    assert entries["a"]["raw"]["dynamodb"]["NewImage"]["blob"]["B"] == b"\x00\xff"
    assert entries["b"]["raw_format"] == "bson" and entries["b"]["raw"]["b"] == Binary(bytes(range(16)), 4)
    assert (entries["c"]["raw_format"], entries["c"]["raw"]) == ("repr", "{'z': (1+2j)}")
    assert entries["d"]["raw_format"] == "extjson_truncated" and entries["d"]["raw_length"] > 16 * 1024 * 1024
    assert "sync_quarantine_by_table" in meta["quarantine"].index_information()


def _configuration(meta_name: str):
    from dynamo2mongo.config import parse_document

    return parse_document({"tables": [{"name": "orders", "source_table": "Orders", "database": "shop",
                                       "collection": "orders", "export": {"s3_bucket": "unused"},
                                       "metadata_database": meta_name}]})


def test_status_and_the_dashboard_show_counts_and_the_newest_reasons(mongo_client, meta):
    from dynamo2mongo.operations.dashboard import table_view
    from dynamo2mongo.operations.status import collect, render

    configuration = _configuration(meta.name)
    quarantine = Quarantine(meta, "orders")
    assert collect(mongo_client, configuration)[0]["quarantine"] == {"forward": 0, "backward": 0, "latest": []}
    quarantine.put("forward", "a", "'$price': a name MongoDB cannot hold", RECORD, position="100")
    for number in range(4):
        quarantine.put("backward", {"pk": f"b{number}"}, f"when: a BSON Date cannot be written ({number})", {})

    (row,) = collect(mongo_client, configuration)
    assert (row["quarantine"]["forward"], row["quarantine"]["backward"]) == (1, 4)
    assert [e["reason"][-3:] for e in row["quarantine"]["latest"]] == ["(3)", "(2)", "(1)"]
    text = render([row])
    header, line = text.splitlines()[:2]
    assert "QUARANTINED" in header.split("  ") and "1 fwd / 4 bwd" in line
    assert ("! orders: 1 forward and 4 backward change(s) quarantined; every other key keeps syncing. Newest "
            "(`dynamo2mongo quarantine list --table orders` lists all):") in text
    assert '    {"pk": "b3"} backward: when: a BSON Date cannot be written (3)' in text

    view = table_view(mongo_client, configuration, configuration.tables[0], dt.datetime.now(dt.timezone.utc), 1.0)
    assert (view["quarantine"]["forward"], view["quarantine"]["backward"]) == (1, 4)
    assert [e["key"] for e in view["quarantine"]["latest"]] == ['{"pk": "b3"}', '{"pk": "b2"}', '{"pk": "b1"}',
                                                                '{"pk": "b0"}', '"a"']
    assert "raw" not in view["quarantine"]["latest"][0] and view["quarantine"]["latest"][0]["last_at"].endswith("Z")


def test_quarantine_list_prints_one_line_per_entry(mongo_uri, meta, tmp_path, monkeypatch, capsys):
    import yaml

    from dynamo2mongo.cli import main

    (tmp_path / "tables.yaml").write_text(yaml.safe_dump({"tables": [
        {"name": "orders", "source_table": "Orders", "database": "shop", "collection": "orders",
         "export": {"s3_bucket": "unused"}, "metadata_database": meta.name}]}))
    monkeypatch.setenv("D2M_CONFIG", str(tmp_path / "tables.yaml"))
    monkeypatch.setenv("MONGO_URI", mongo_uri)
    quarantine = Quarantine(meta, "orders")
    quarantine.put("forward", {"pk": "a", "sk": Decimal128("1.5")}, "'$price': a name MongoDB cannot hold", RECORD)
    quarantine.put("backward", "b", "n: inf is not a finite number", {})
    quarantine.put("backward", "b", "n: inf is not a finite number", {})

    assert main(["quarantine", "list", "--table", "orders"]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [line[:4] for line in lines] == [['"b"', "backward", "n: inf is not a finite number", "2"],
                                            ['{"pk": "a", "sk": {"$numberDecimal": "1.5"}}', "forward",
                                             "'$price': a name MongoDB cannot hold", "1"]]
    assert dt.datetime.fromisoformat(lines[0][4]).tzinfo is not None
    assert main(["quarantine", "list", "--table", "orders", "--direction", "forward"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    with pytest.raises(SystemExit, match="table 'shipments' is not in the table configuration"):
        main(["quarantine", "list", "--table", "shipments"])


def test_the_monitor_alerts_once_when_the_quarantine_fills_and_once_when_it_empties(mongo_client, meta):
    from dynamo2mongo.operations.monitor import check_table, commit

    configuration = _configuration(meta.name)
    table = configuration.tables[0]
    quarantine = Quarantine(meta, "orders")

    def alerts():
        found = check_table(mongo_client, configuration, table, dt.datetime.now(dt.timezone.utc))[1]
        for alert in found:
            commit(mongo_client, alert)
        return [(a.event, a.direction) for a in found]

    assert alerts() == []
    quarantine.put("backward", {"pk": "b"}, "when: a BSON Date cannot be written", {})
    (alert,) = check_table(mongo_client, configuration, table, dt.datetime.now(dt.timezone.utc))[1]
    assert (alert.event, alert.direction, alert.subject) == ("quarantine", "backward",
                                                             "dynamo2mongo orders: 1 change(s) quarantined")
    assert ('orders (Orders -> shop.orders): 0 forward and 1 backward change(s) could not be written and are '
            'quarantined; every other key keeps syncing. Newest: key {"pk": "b"} (backward): when: a BSON Date '
            'cannot be written. List them with `dynamo2mongo quarantine list --table orders`') in alert.message
    assert alerts() == [("quarantine", "backward")], "not committed: raised again"
    quarantine.put("forward", "a", "why", {})
    assert alerts() == [], "an open quarantine alert is not repeated as it grows"

    quarantine.resolve("backward", [{"pk": "b"}])
    assert alerts() == []
    quarantine.resolve("forward", ["a"])
    (cleared,) = check_table(mongo_client, configuration, table, dt.datetime.now(dt.timezone.utc))[1]
    assert (cleared.event, cleared.direction) == ("quarantine_cleared", "backward")
    assert cleared.message.startswith("orders: the sync quarantine is empty again after 0 min (was: 0 forward, "
                                      "1 backward).")
    commit(mongo_client, cleared)
    assert alerts() == []
