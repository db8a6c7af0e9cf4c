"""Pure parts of backward sync: change events, keys back to DynamoDB, echo recognition."""

from __future__ import annotations

import datetime as dt

import pytest
from bson import Timestamp

from dynamo2mongo.sync import dynamodb_items
from dynamo2mongo.sync.events import Event, StreamEnded, to_event
from dynamo2mongo.sync.typememory import restore
from dynamo2mongo.mapping import item_to_document

AT = dt.datetime(2026, 12, 4, tzinfo=dt.timezone.utc)

KEYS = ("pk", "sk")


def _change(operation, document=None, key=None, ns=None):
    change = {"_id": {"_data": "01"}, "operationType": operation, "clusterTime": Timestamp(1_800_000_000, 1)}
    if document is not None:
        change["fullDocument"] = document
    if key is not None:
        change["documentKey"] = {"_id": key}
    if ns is not None:
        change["ns"] = ns
    return change


def test_events_carry_the_post_image_or_the_key():
    document = {"_id": {"pk": "a", "sk": 1}, "pk": "a", "sk": 1}
    upsert = to_event(_change("update", document), "c")
    assert (upsert.op, upsert.id, upsert.document) == ("upsert", document["_id"], document)
    assert upsert.at == dt.datetime.fromtimestamp(1_800_000_000, dt.timezone.utc)
    assert to_event(_change("delete", key={"pk": "a", "sk": 1}), "c").op == "delete"
    # Deleted before its post-image was looked up: the delete event that follows does the work.
    assert to_event(_change("update", {}, key={"pk": "a", "sk": 1}), "c").op == "gone"
    assert to_event(_change("createIndexes"), "c") is None


def test_a_drop_ends_the_stream_only_for_the_watched_collection():
    with pytest.raises(StreamEnded, match="dropped or renamed"):
        to_event(_change("drop", ns={"db": "d", "coll": "c"}), "c")
    assert to_event(_change("drop", ns={"db": "d", "coll": "other"}), "c") is None
    with pytest.raises(StreamEnded):
        to_event(_change("invalidate"), "c")


@pytest.mark.parametrize(
    "key_attrs, item",
    [
        (("id",), {"id": {"S": "x"}}),
        (("pk", "sk"), {"pk": {"S": "a.b"}, "sk": {"N": "12345678901234567890123"}}),
        (("_id",), {"_id": {"B": b"\x00\x01"}}),
    ],
)
def test_document_ids_map_back_to_dynamodb_keys(key_attrs, item):
    document_id = item_to_document(item, key_attrs)["_id"]
    assert dynamodb_items.dynamodb_key(document_id, key_attrs) == item


def test_sync_writes_are_told_by_their_token_never_by_content():
    document = {"_id": "a", "pk": "a", "_ddb": {"sync": {"src": "dynamodb", "h": "x", "seq": "0042"}}}
    replaced = Event("a", "upsert", document, AT, {"_data": "01"}, "replace")
    assert replaced.write_token == "0042"
    updated = Event("a", "upsert", document, AT, {"_data": "02"}, "update")
    assert updated.write_token is None, "an update is the application's, even with the mark copied along"
    restored = {**document, "_ddb": {"sync": {"seq": "0042", "w": "b1"}}}
    assert Event("a", "upsert", restored, AT, None, "replace").write_token == "b1"
    assert Event("a", "delete", None, AT, None, "delete").write_token == "-"


def test_remembered_types_come_back_where_the_values_still_fit():
    hints = [{"p": ["tags"], "t": "SS"}, {"p": ["big"], "t": "N"}, {"p": ["gone"], "t": "NS"}]
    document, undecided = restore({"_id": "a", "tags": ["x", "y"], "big": 7}, hints)
    assert document["_ddb"] == {"t": [{"p": ["tags"], "t": "SS"}]}
    assert undecided == [["big"]]
    kept = {"_id": "a", "tags": ["x"], "_ddb": {}}
    assert restore(kept, hints) == (kept, []), "a document with _ddb keeps its own hints"


