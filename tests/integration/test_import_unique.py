"""Import into a collection with a unique index besides _id: an _id collision is a document already
there, a collision on the other index is a conflict that fails the import by name."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from bson import json_util
from pymongo.errors import BulkWriteError

from dynamo2mongo.sync.keystate import KeyStates
from dynamo2mongo.fullload.load import ImportFailed, import_lines
from dynamo2mongo.mapping import item_to_document

pytestmark = pytest.mark.integration

KEY = "exp/AWSDynamoDB/x/mongo-extjson/f.jsonl.gz"


def _line(pk: str, email: str) -> str:
    document = item_to_document({"pk": {"S": pk}, "email": {"S": email}}, ("pk",))
    return json_util.dumps(document, json_options=json_util.CANONICAL_JSON_OPTIONS)


@pytest.fixture
def users(mongo_client):
    collection = mongo_client["itest"][f"unique-{uuid.uuid4().hex[:8]}"]
    collection.create_index("email", unique=True, name="email_1")
    return collection


def _emails(collection) -> dict:
    return {d["_id"]: d["email"] for d in collection.find()}


def test_a_new_document_colliding_on_another_unique_index_fails_the_import_by_name(users):
    lines = [_line("u1", "a@x"), _line("u2", "b@x"), _line("u3", "a@x"), _line("u4", "c@x")]
    with pytest.raises(ImportFailed) as failure:
        import_lines(lines, users, KEY, batch_size=10)
    message = str(failure.value)
    assert message.startswith(f"{KEY}: 1 of 4 documents in a batch collide with other documents on a unique index other than _id")
    assert '_id="u3": unique index email_1, duplicate key ' in message and "a@x" in message
    assert _emails(users) == {"u1": "a@x", "u2": "b@x", "u4": "c@x"}, "the rest of the batch is written"


def test_an_existing_document_whose_new_version_collides_is_not_counted_as_kept(users):
    import_lines([_line("u1", "a@x"), _line("u2", "b@x")], users, KEY)
    with pytest.raises(ImportFailed) as failure:
        import_lines([_line("u1", "b@x"), _line("u3", "c@x")], users, KEY)
    assert '_id="u1": unique index email_1, duplicate key ' in str(failure.value) and "b@x" in str(failure.value)
    assert _emails(users) == {"u1": "a@x", "u2": "b@x", "u3": "c@x"}


def test_reimport_with_another_unique_index_is_idempotent(users):
    lines = [_line(f"u{i}", f"{i}@x") for i in range(20)]
    first = import_lines(lines, users, KEY, batch_size=7)
    snapshot = sorted(json_util.dumps(d, sort_keys=True) for d in users.find())
    again = import_lines(lines, users, KEY, batch_size=7)
    assert (first.upserted, first.replaced, first.kept_newer) == (20, 0, 0)
    assert (again.upserted, again.replaced, again.kept_newer) == (0, 20, 0)
    assert sorted(json_util.dumps(d, sort_keys=True) for d in users.find()) == snapshot


class _KeyPatternServer:
    """A collection answering as MongoDB 4.2+ does, with keyPattern and keyValue and an errmsg that
    names no index, so only keyPattern can tell the collisions apart."""

    def __init__(self, collisions: dict[int, dict]):
        self.collisions = collisions
        self.replaced = 0

    def insert_many(self, documents, ordered):
        errors = [
            {"index": i, "code": 11000, "errmsg": "E11000 duplicate key error", "keyPattern": {f: 1 for f in key}, "keyValue": key}
            for i, key in self.collisions.items()
        ]
        raise BulkWriteError({"writeErrors": errors, "nInserted": len(documents) - len(errors)})

    def bulk_write(self, requests, ordered):
        self.replaced += len(requests)
        return SimpleNamespace(upserted_count=0, matched_count=len(requests))


def test_key_pattern_tells_an_id_collision_from_another_index():
    lines = [_line("u1", "a@x"), _line("u2", "b@x"), _line("u3", "c@x")]
    server = _KeyPatternServer({0: {"_id": "u1"}, 2: {"_id": "u3"}})
    result = import_lines(lines, server, KEY, guard_newer=False)
    assert (result.upserted, result.replaced, result.kept_newer) == (1, 2, 0)

    server = _KeyPatternServer({0: {"_id": "u1"}, 1: {"email": "b@x"}})
    with pytest.raises(ImportFailed, match='_id="u2": unique index {"email": 1}, duplicate key {"email": "b@x"}'):
        import_lines(lines, server, KEY, guard_newer=False)
    assert server.replaced == 0


def _stream_record(seq: int, user: str, email: str) -> dict:
    keys = {"pk": {"S": user}}
    return {"eventID": f"e{seq}", "eventName": "INSERT", "dynamodb": {
        "Keys": keys, "NewImage": {**keys, "email": {"S": email}}, "SequenceNumber": f"{seq:021d}",
        "ApproximateCreationDateTime": 1_760_000_000 + seq, "StreamViewType": "NEW_AND_OLD_IMAGES"}}


def test_forward_sync_fails_a_change_another_unique_index_turns_away(users, mongo_client):
    from dynamo2mongo.sync import forward

    keys = KeyStates(mongo_client["unique_itest_meta"], "unique_itest")
    records = [_stream_record(1, "a", "same@x"), _stream_record(2, "b", "same@x"), _stream_record(3, "c", "c@x")]
    result = forward.apply_records(records, users, keys, "unique_itest", ("pk",))

    assert result.skipped == 0, "a change turned away by another index is not 'already applied'"
    assert [change.id for change, _ in result.failed] == ["b"]
    assert "unique index email_1 already holds" in result.failed[0][1]
    assert sorted(d["_id"] for d in users.find()) == ["a", "c"]
