"""Echoes of backward writes on a key only MongoDB writes, met late by forward sync (DESIGN §6).

The application deletes and re-creates a key in MongoDB, so backward sync writes the same content
(a tombstone, the re-created document) to DynamoDB more than once. Forward sync, lagging behind
(a restarted relay), meets those writes coming back while the application changes the key again.
Every one of them is an echo: no conflict may be reported, since DynamoDB never changed the key on
its own. A key DynamoDB does change meanwhile is still a conflict.

The same holds the other way round (forward sync's deletes met by backward sync), and a write
that changed nothing in DynamoDB leaves no entry waiting for an echo that never comes.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest

from dynamo2mongo.sync import backward, forward
from dynamo2mongo.sync.events import Event
from dynamo2mongo.sync.keystate import KeyStates
from dynamo2mongo.sync.echo import CONFLICTS, TO_DYNAMODB, EchoLedger
from dynamo2mongo.mapping import item_to_document

pytestmark = pytest.mark.integration
KEYS = ("pk", "sk")
TABLE = "orders"
KEY = {"pk": {"S": "tenant#7"}, "sk": {"N": "7"}}
ID = {"pk": "tenant#7", "sk": 7}
AT = dt.datetime(2026, 11, 25, tzinfo=dt.timezone.utc)


class FakeDynamoDB:
    """One table and its stream: just the calls the two sync directions make."""

    def __init__(self):
        self.items: dict[str, dict[str, Any]] = {}
        self.stream: list[dict[str, Any]] = []
        self.read = 0

    @staticmethod
    def _slot(keys: dict[str, Any]) -> str:
        return json.dumps({name: keys[name] for name in KEYS}, sort_keys=True)

    def _record(self, event: str, keys: dict[str, Any], image: dict[str, Any] | None) -> None:
        data = {"SequenceNumber": str(1000 + len(self.stream)), "Keys": {n: keys[n] for n in KEYS},
                "ApproximateCreationDateTime": AT}
        if image is not None:
            data["NewImage"] = image
        self.stream.append({"eventID": f"e{len(self.stream)}", "eventName": event, "dynamodb": data})

    def put_item(self, TableName: str, Item: dict[str, Any]) -> dict:
        old = self.items.get(self._slot(Item))
        if old != Item:
            # Like DynamoDB, a put that changes nothing writes no stream record.
            self.items[self._slot(Item)] = Item
            self._record("INSERT" if old is None else "MODIFY", Item, Item)
        return {}

    def delete_item(self, TableName: str, Key: dict[str, Any], ReturnValues: str = "NONE") -> dict:
        old = self.items.pop(self._slot(Key), None)
        if old is None:
            return {}
        self._record("REMOVE", Key, None)
        return {"Attributes": old} if ReturnValues == "ALL_OLD" else {}

    def get_item(self, TableName: str, Key: dict[str, Any], ConsistentRead: bool = True) -> dict:
        item = self.items.get(self._slot(Key))
        return {"Item": item} if item is not None else {}

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict:
        ((table, request),) = RequestItems.items()
        found = [self.items[self._slot(k)] for k in request["Keys"] if self._slot(k) in self.items]
        return {"Responses": {table: found}}

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict:
        ((table, requests),) = RequestItems.items()
        for request in requests:
            if "PutRequest" in request:
                self.put_item(table, request["PutRequest"]["Item"])
            else:
                self.delete_item(table, request["DeleteRequest"]["Key"])
        return {}

    def new_records(self) -> list[dict[str, Any]]:
        """What a relay polling the stream reads next."""
        records, self.read = self.stream[self.read :], len(self.stream)
        return records


class Sides:
    """A migrated table with both sync directions, driven one step at a time."""

    def __init__(self, mongo_client):
        database = mongo_client[f"ledger_{uuid.uuid4().hex[:8]}"]
        self.collection = database["orders"]
        self.meta = database
        self.keys = KeyStates(database, TABLE)
        self.dynamodb = FakeDynamoDB()
        self.ledger = EchoLedger(database, TABLE)
        self.events = 0
        self.dynamodb.put_item(TABLE, self.item("new"))
        self.forward(self.dynamodb.new_records())

    @staticmethod
    def item(status: str) -> dict[str, Any]:
        return {**KEY, "status": {"S": status}}

    def forward(self, records: list[dict[str, Any]], ledger: EchoLedger | None = None) -> forward.ApplyResult:
        sync = forward.SyncContext(ledger or self.ledger, "dynamodb_wins", self.dynamodb, TABLE)
        return forward.apply_records(records, self.collection, self.keys, TABLE, KEYS, sync=sync)

    def application(self, status: str | None) -> None:
        """The application writes MongoDB (None: deletes the key); backward sync carries it over."""
        if status is None:
            self.collection.delete_one({"_id": ID})
            event = Event(ID, "delete", None, AT, {"_data": f"{self.events:04d}"})
        else:
            self.collection.replace_one({"_id": ID}, item_to_document(self.item(status), KEYS), upsert=True)
            event = Event(ID, "upsert", self.collection.find_one({"_id": ID}), AT,
                                   {"_data": f"{self.events:04d}"})
        self.events += 1
        self.backward([event])

    def backward(self, events: list[Event]) -> backward.BackwardResult:
        return backward.apply_events(events, dynamodb=self.dynamodb, source_table=TABLE, key_attrs=KEYS,
                                     collection=self.collection, ledger=self.ledger, policy="dynamodb_wins",
                                     keys=self.keys)

    def application_unsynced(self, status: str) -> None:
        """An application change backward sync has not read yet."""
        self.collection.replace_one({"_id": ID}, item_to_document(self.item(status), KEYS), upsert=True)

    def conflicts(self) -> list[dict[str, Any]]:
        return list(self.meta[CONFLICTS].find())


@pytest.fixture
def sides(mongo_client):
    return Sides(mongo_client)


def test_the_same_content_written_twice_before_its_first_echo_is_met_echoes_twice(sides):
    sides.application(None)
    sides.application("recreated")
    sides.application(None)
    sides.application_unsynced("changed-again")
    result = sides.forward(sides.dynamodb.new_records())
    assert (result.echoes, result.conflicts) == (3, 0)
    assert sides.conflicts() == []
    assert sides.collection.find_one({"_id": ID})["status"] == "changed-again"


def test_a_write_noted_while_forward_sync_applies_the_batch_keeps_its_entry(sides):
    sides.application(None)
    sides.application("recreated")

    class Interleaved(EchoLedger):
        """Backward sync writes the same content again between forward sync's read of the ledger
        and its consuming the echoes it met."""

        def consume(self, *args, **kwargs):
            sides.application(None)
            super().consume(*args, **kwargs)

    result = sides.forward(sides.dynamodb.new_records(), Interleaved(sides.meta, TABLE))
    assert (result.echoes, result.conflicts) == (2, 0)
    sides.application_unsynced("changed-again")
    result = sides.forward(sides.dynamodb.new_records())
    assert (result.echoes, result.conflicts) == (1, 0)
    assert sides.conflicts() == []


def test_a_replayed_echo_does_not_take_the_entry_of_a_later_write_of_the_same_content(sides):
    sides.application(None)
    replayed = sides.dynamodb.new_records()
    assert sides.forward(replayed).echoes == 1
    # The relay is killed before its checkpoint: the batch comes again, after the key was
    # re-created and deleted again.
    sides.application("recreated")
    sides.application(None)
    sides.application_unsynced("changed-again")
    again = sides.forward(replayed)
    assert (again.skipped, again.echoes, again.conflicts) == (1, 0, 0), "a replay is known by the key's sequence number"
    result = sides.forward(sides.dynamodb.new_records())
    assert (result.echoes, result.conflicts) == (2, 0)
    assert sides.conflicts() == []


def test_every_echo_met_leaves_nothing_pending(sides):
    for status in (None, "recreated", None, "recreated", "changed"):
        sides.application(status)
    records = sides.dynamodb.new_records()
    assert sides.forward(records).echoes == 5
    assert sides.ledger.pending(TO_DYNAMODB, [ID]) == {}
    again = sides.forward(records)
    assert (again.skipped, again.written, again.conflicts) == (5, 0, 0), "a replay changes nothing"
    assert sides.conflicts() == []


def test_dynamodb_changing_the_key_meanwhile_is_still_a_conflict(sides):
    sides.application(None)
    sides.application("recreated")
    sides.application(None)
    sides.dynamodb.put_item(TABLE, sides.item("from-dynamodb"))
    sides.application_unsynced("changed-again")
    result = sides.forward(sides.dynamodb.new_records())
    assert (result.echoes, result.conflicts) == (3, 1)
    (conflict,) = sides.conflicts()
    assert conflict["key"] == ID and conflict["resolution"] == "dynamodb"
    assert sides.collection.find_one({"_id": ID})["status"] == "from-dynamodb"


def test_forward_deletes_of_a_key_only_dynamodb_writes_are_each_skipped_by_backward_sync(sides):
    """The mirror image: forward sync deletes the key twice before backward sync meets the first delete."""
    events = []
    for item in (None, sides.item("again"), None):
        if item is None:
            sides.dynamodb.delete_item(TABLE, KEY)
        else:
            sides.dynamodb.put_item(TABLE, item)
        sides.forward(sides.dynamodb.new_records())
        document = sides.collection.find_one({"_id": ID})
        events.append(Event(ID, "upsert" if document else "delete", document, AT, {"_data": str(len(events))},
                                     "insert" if document else "delete"))
    sides.dynamodb.put_item(TABLE, sides.item("latest"))
    result = sides.backward(events)
    assert (result.echoes, result.deleted) == (3, 0)
    assert sides.dynamodb.get_item(TABLE, KEY)["Item"]["status"] == {"S": "latest"}


def test_a_delete_dynamodb_made_first_leaves_no_entry_whose_echo_never_comes(sides):
    read = sides.dynamodb.batch_get_item

    def read_then_dynamodb_deletes(RequestItems):
        # Between backward sync's read and its delete, DynamoDB deletes the item and forward sync
        # carries that delete over.
        found = read(RequestItems)
        sides.dynamodb.delete_item(TABLE, KEY)
        assert sides.forward(sides.dynamodb.new_records()).echoes == 0
        return found

    sides.dynamodb.batch_get_item = read_then_dynamodb_deletes
    sides.application(None)
    sides.dynamodb.batch_get_item = read
    assert sides.ledger.pending(TO_DYNAMODB, [ID]) == {}
    sides.application("recreated")
    sides.application(None)
    assert sides.forward(sides.dynamodb.new_records()).echoes == 2
    assert sides.ledger.pending(TO_DYNAMODB, [ID]) == {}
