"""Change events checked against MongoDB's documented shapes
(https://www.mongodb.com/docs/manual/reference/change-events/), on whichever server the session runs:
the sandbox's by default, a real replica set or Atlas when MONGO_URI is set. Both must pass unchanged."""

from __future__ import annotations

import datetime
import random
import threading
import time
import uuid

import pytest
from bson import Timestamp
from pymongo import MongoClient, ReplaceOne
from pymongo.errors import BulkWriteError, OperationFailure

pytestmark = pytest.mark.integration

DB = "itest_events"
# Fields every event of these types has (MongoDB 6+); fields the options add are checked per test.
BASE = {"_id", "operationType", "clusterTime", "wallTime"}
DOCUMENT_EVENT = BASE | {"ns", "documentKey"}


@pytest.fixture
def db(mongo_client):
    return mongo_client[DB]


@pytest.fixture
def name():
    return f"events-{uuid.uuid4().hex[:8]}"


def take(stream, count: int, timeout: float = 10.0) -> list[dict]:
    """The next ``count`` events; a real server may need a moment to make them visible to the stream."""
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(events) < count and time.monotonic() < deadline:
        event = stream.try_next()
        if event is not None:
            events.append(event)
    assert len(events) == count, f"expected {count} events, got {events}"
    return events


def assert_nothing_more(stream) -> None:
    for _ in range(3):
        assert stream.try_next() is None


def assert_times(events: list[dict]) -> None:
    """clusterTime strictly increases (each event distinct); wallTime is a date in milliseconds near it."""
    times = [event["clusterTime"] for event in events]
    assert all(isinstance(t, Timestamp) for t in times)
    assert all(a < b for a, b in zip(times, times[1:])), times
    for event in events:
        wall = event["wallTime"]
        assert isinstance(wall, datetime.datetime)
        assert wall.microsecond % 1000 == 0
        assert abs(wall.replace(tzinfo=datetime.timezone.utc).timestamp() - event["clusterTime"].time) < 2
    # Whole seconds on every event would mean the server reports no milliseconds at all.
    assert any(event["wallTime"].microsecond for event in events)


def test_insert_update_replace_delete_have_their_documented_shapes(db, name):
    collection = db[name]
    collection.insert_one({"_id": 0})
    with collection.watch(max_await_time_ms=100) as stream:
        collection.insert_one({"_id": 1, "x": 1, "sub": {"p": 1, "q": 2}, "arr": [1]})
        collection.update_one(
            {"_id": 1},
            {"$set": {"x": 2, "sub.p": 5, "made.deep": 1}, "$unset": {"sub.q": ""}, "$push": {"arr": 2}},
        )
        collection.replace_one({"_id": 1}, {"y": 1})
        collection.bulk_write([ReplaceOne({"_id": 2}, {"z": 1}, upsert=True)])
        collection.bulk_write([ReplaceOne({"_id": 2}, {"z": 2}, upsert=True)])
        collection.update_one({"_id": 2}, {"$set": {"z": 2}})  # changes nothing: no event
        collection.delete_one({"_id": 1})
        time.sleep(0.01)
        collection.update_one({"_id": 0}, {"$set": {"late": True}})
        events = take(stream, 7)
        assert_nothing_more(stream)

    ns = {"db": DB, "coll": name}
    insert, update, replace, upsert, replace_upserted, delete, late = events
    assert [e["operationType"] for e in events] == ["insert", "update", "replace", "insert", "replace", "delete", "update"]
    for event in events:
        assert set(event) >= DOCUMENT_EVENT
        assert event["ns"] == ns
        assert "fullDocumentBeforeChange" not in event
    assert insert["fullDocument"] == {"_id": 1, "x": 1, "sub": {"p": 1, "q": 2}, "arr": [1]}
    assert insert["documentKey"] == {"_id": 1}
    assert "fullDocument" not in update
    assert update["documentKey"] == {"_id": 1}
    description = update["updateDescription"]
    assert description["updatedFields"] == {"x": 2, "sub.p": 5, "made": {"deep": 1}, "arr.1": 2}
    assert description["removedFields"] == ["sub.q"]
    assert description["truncatedArrays"] == []
    assert "updateDescription" not in replace
    assert replace["fullDocument"] == {"_id": 1, "y": 1}
    assert upsert["fullDocument"] == {"_id": 2, "z": 1}
    assert replace_upserted["fullDocument"] == {"_id": 2, "z": 2}
    assert delete["documentKey"] == {"_id": 1}
    assert "fullDocument" not in delete
    assert late["updateDescription"]["updatedFields"] == {"late": True}
    assert_times(events)


def test_update_lookup_gives_the_current_document(db, name):
    collection = db[name]
    collection.insert_one({"_id": 1, "n": 0})
    with collection.watch(full_document="updateLookup", max_await_time_ms=100) as stream:
        collection.update_one({"_id": 1}, {"$inc": {"n": 1}})
        collection.update_one({"_id": 1}, {"$inc": {"n": 1}})
        first, second = take(stream, 2)
    # updateLookup reads the document when the event is read, so both see the last version.
    assert first["fullDocument"] == second["fullDocument"] == {"_id": 1, "n": 2}


@pytest.mark.parametrize("mode", ["required", "whenAvailable"])
def test_images_are_the_documents_right_before_and_after_each_event(db, name, mode):
    db.create_collection(name, changeStreamPreAndPostImages={"enabled": True})
    collection = db[name]
    [listed] = db.list_collections(filter={"name": name})
    assert listed["options"]["changeStreamPreAndPostImages"] == {"enabled": True}
    with collection.watch(full_document=mode, full_document_before_change=mode, max_await_time_ms=100) as stream:
        collection.insert_one({"_id": 1, "n": 0})
        collection.update_one({"_id": 1}, {"$inc": {"n": 1}})
        collection.update_one({"_id": 1}, {"$inc": {"n": 1}})
        collection.replace_one({"_id": 1}, {"r": True})
        collection.delete_one({"_id": 1})
        insert, first, second, replace, delete = take(stream, 5)
    assert insert["fullDocument"] == {"_id": 1, "n": 0}
    assert "fullDocumentBeforeChange" not in insert
    assert (first["fullDocumentBeforeChange"], first["fullDocument"]) == ({"_id": 1, "n": 0}, {"_id": 1, "n": 1})
    assert (second["fullDocumentBeforeChange"], second["fullDocument"]) == ({"_id": 1, "n": 1}, {"_id": 1, "n": 2})
    assert (replace["fullDocumentBeforeChange"], replace["fullDocument"]) == ({"_id": 1, "n": 2}, {"_id": 1, "r": True})
    assert delete["fullDocumentBeforeChange"] == {"_id": 1, "r": True}
    assert "fullDocument" not in delete


def test_images_switched_on_by_coll_mod_and_missing_before(db, name):
    collection = db[name]
    collection.insert_one({"_id": 1, "n": 0})
    with collection.watch(full_document="whenAvailable", full_document_before_change="whenAvailable",
                          max_await_time_ms=100) as stream:
        collection.update_one({"_id": 1}, {"$inc": {"n": 1}})
        db.command("collMod", name, changeStreamPreAndPostImages={"enabled": True})
        collection.update_one({"_id": 1}, {"$inc": {"n": 1}})
        without, with_images = take(stream, 2)
    assert without["fullDocument"] is None and without["fullDocumentBeforeChange"] is None
    assert with_images["fullDocumentBeforeChange"] == {"_id": 1, "n": 1}
    assert with_images["fullDocument"] == {"_id": 1, "n": 2}
    [listed] = db.list_collections(filter={"name": name})
    assert listed["options"]["changeStreamPreAndPostImages"] == {"enabled": True}


def test_a_required_image_that_does_not_exist_fails_the_stream(db, name):
    collection = db[name]
    collection.insert_one({"_id": 1})
    with collection.watch(full_document_before_change="required", max_await_time_ms=100) as stream:
        collection.update_one({"_id": 1}, {"$set": {"a": 1}})
        with pytest.raises(OperationFailure):
            take(stream, 1)


def test_a_collection_stream_reports_only_its_own_drop_then_invalidates(db, name):
    collection, other = db[name], db[f"{name}-other"]
    collection.insert_one({"_id": 1})
    other.insert_one({"_id": 1})
    with collection.watch(max_await_time_ms=100) as stream:
        other.drop()
        collection.drop()
        drop, invalidate = take(stream, 2)
        assert not stream.alive
    assert drop["operationType"] == "drop"
    assert set(drop) >= BASE | {"ns"}
    assert drop["ns"] == {"db": DB, "coll": name}
    assert invalidate["operationType"] == "invalidate"
    assert set(invalidate) >= BASE and "ns" not in invalidate
    # startAfter (not resumeAfter) may pass an invalidate: the new stream sees the re-created collection.
    with collection.watch(start_after=invalidate["_id"], max_await_time_ms=100) as again:
        collection.insert_one({"_id": 2})
        [insert] = take(again, 1)
    assert insert["documentKey"] == {"_id": 2}


def test_rename_is_reported_with_both_namespaces(mongo_client, db, name):
    collection = db[name]
    collection.insert_one({"_id": 1})
    with collection.watch(max_await_time_ms=100) as stream:
        mongo_client.admin.command("renameCollection", f"{DB}.{name}", to=f"{DB}.{name}-renamed")
        rename, invalidate = take(stream, 2)
    assert rename["operationType"] == "rename"
    assert rename["ns"] == {"db": DB, "coll": name}
    assert rename["to"] == {"db": DB, "coll": f"{name}-renamed"}
    assert invalidate["operationType"] == "invalidate"


def test_resume_after_start_after_and_start_at_operation_time(db, name):
    collection = db[name]
    with collection.watch(max_await_time_ms=100) as stream:
        for n in range(5):
            collection.insert_one({"_id": n})
        events = take(stream, 5)
        assert_nothing_more(stream)
        # The token after an empty batch (postBatchResumeToken) resumes without replaying anything.
        quiet_token = stream.resume_token
    ids = lambda es: [e["documentKey"]["_id"] for e in es]  # noqa: E731
    with collection.watch(resume_after=events[1]["_id"], max_await_time_ms=100) as resumed:
        assert ids(take(resumed, 3)) == [2, 3, 4]
    with collection.watch(start_after=events[3]["_id"], max_await_time_ms=100) as resumed:
        assert ids(take(resumed, 1)) == [4]
    with collection.watch(start_at_operation_time=events[2]["clusterTime"], max_await_time_ms=100) as resumed:
        assert ids(take(resumed, 3)) == [2, 3, 4]
    with collection.watch(resume_after=quiet_token, max_await_time_ms=100) as resumed:
        collection.insert_one({"_id": 5})
        assert ids(take(resumed, 1)) == [5]
        assert_nothing_more(resumed)


def test_an_older_guarded_write_never_overwrites_a_newer_one(mongo_uri, db, name):
    """Two writers of one key, each sending its sequence numbers out of order, both guarded in the filter
    as forward sync and the import guard: the stored sequence number only ever goes up."""
    key = "k"
    sequences = list(range(1, 201))
    random.Random(7).shuffle(sequences)
    halves = [sequences[0::2], sequences[1::2]]
    accepted: list[int] = []
    lock = threading.Lock()
    collection = db[name]

    def write(own: list[int]) -> None:
        client = MongoClient(mongo_uri)
        target = client[DB][name]
        try:
            for seq in own:
                guard = {"_id": key, "_ddb.sync.seq": {"$not": {"$gte": seq}}}
                document = {"_id": key, "v": f"version {seq}", "_ddb": {"sync": {"seq": seq}}}
                try:
                    target.bulk_write([ReplaceOne(guard, document, upsert=True)])
                except BulkWriteError as error:
                    # The guard failed, so the upsert collided with the newer document: kept, not written.
                    assert {e["code"] for e in error.details["writeErrors"]} == {11000}
                    continue
                with lock:
                    accepted.append(seq)
        finally:
            client.close()

    with collection.watch(max_await_time_ms=100) as stream:
        writers = [threading.Thread(target=write, args=(half,)) for half in halves]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        events = take(stream, len(accepted))
        assert_nothing_more(stream)
    written = [event["fullDocument"]["_ddb"]["sync"]["seq"] for event in events]
    assert written == sorted(written) and len(set(written)) == len(written)
    assert sorted(written) == sorted(accepted)
    assert collection.find_one({"_id": key})["_ddb"]["sync"]["seq"] == max(sequences)
