"""A seeded random writer that changes the sample table while it migrates (sandbox, tests, bench).

Operations: insert a new item, update an existing one (UpdateItem, so DynamoDB itself builds the
new image), delete one, and re-create a key deleted earlier, on keys that overlap on purpose.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Any

from dynamo2mongo.sandbox import sample


class _Writer:
    """Runs ``step()`` at a pace, in the caller's thread (``run``) or its own (``start``)."""

    ops: Counter[str]

    def step(self) -> str:
        raise NotImplementedError

    def run(self, stop: threading.Event, per_second: float = 50.0, max_ops: int | None = None) -> Counter[str]:
        """Write at about ``per_second`` operations a second until ``stop`` is set (or ``max_ops``)."""
        pause = 1.0 / per_second if per_second > 0 else 0.0
        while not stop.is_set() and (max_ops is None or sum(self.ops.values()) < max_ops):
            self.step()
            if pause:
                time.sleep(pause)
        return self.ops

    def start(self, per_second: float = 50.0, max_ops: int | None = None) -> tuple[threading.Thread, threading.Event]:
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop, per_second, max_ops), name=type(self).__name__,
                                  daemon=True)
        thread.start()
        return thread, stop


class Workload(_Writer):
    def __init__(self, dynamodb: Any, table: str, existing: int, seed: int = 1):
        self.dynamodb = dynamodb
        self.table = table
        self.rng = random.Random(seed)
        self.live = list(range(existing))
        self.deleted: list[int] = []
        self.next_index = existing
        self.touched: set[int] = set()
        self.ops: Counter[str] = Counter()

    def _key(self, index: int) -> dict[str, Any]:
        item = sample.item(index)
        return {"pk": item["pk"], "sk": item["sk"]}

    def step(self) -> str:
        roll = self.rng.random()
        if roll < 0.25 or not self.live:
            index = self.next_index
            self.next_index += 1
            self.dynamodb.put_item(TableName=self.table, Item=sample.item(index))
            self.live.append(index)
            op = "insert"
        elif roll < 0.7:
            index = self.rng.choice(self.live)
            self.dynamodb.update_item(
                TableName=self.table,
                Key=self._key(index),
                UpdateExpression="SET #s = :s, #t = :t, #v = if_not_exists(#v, :zero) + :one ADD #g :g",
                ExpressionAttributeNames={"#s": "status", "#t": "total", "#v": "version", "#g": "tags"},
                ExpressionAttributeValues={
                    ":s": {"S": self.rng.choice(["paid", "shipped", "returned", "cancelled"])},
                    ":t": {"N": f"{self.rng.randint(0, 10**9)}.{self.rng.randint(0, 99):02d}"},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":g": {"SS": [f"w{self.rng.randint(0, 9)}"]},
                },
            )
            op = "update"
        elif roll < 0.9 or not self.deleted:
            index = self.live.pop(self.rng.randrange(len(self.live)))
            self.dynamodb.delete_item(TableName=self.table, Key=self._key(index))
            self.deleted.append(index)
            op = "delete"
        else:
            index = self.deleted.pop(self.rng.randrange(len(self.deleted)))
            item = sample.item(index)
            item["recreated"] = {"BOOL": True}
            self.dynamodb.put_item(TableName=self.table, Item=item)
            self.live.append(index)
            op = "recreate"
        self.touched.add(index)
        self.ops[op] += 1
        return op



class MongoWorkload(_Writer):
    """The new application writing MongoDB directly, on keys that overlap the DynamoDB writer's.

    Like a real application it keeps the key fields and the ``_id`` convention, and copies the
    document's ``_ddb`` field along on updates (backward sync must still see those changes).
    """

    def __init__(self, collection: Any, key_attrs: tuple[str, ...], existing: int, seed: int = 2):
        self.collection = collection
        self.key_attrs = key_attrs
        self.rng = random.Random(seed)
        self.existing = existing
        self.next_index = existing + 1_000_000
        self.ops: Counter[str] = Counter()
        self.touched: set[int] = set()

    def _document(self, index: int) -> dict[str, Any]:
        from dynamo2mongo.mapping import item_to_document

        return item_to_document(sample.item(index), self.key_attrs)

    def step(self) -> str:
        roll = self.rng.random()
        if roll < 0.2:
            index = self.next_index
            self.next_index += 1
            self.collection.insert_one(self._document(index))
            op = "insert"
        else:
            index = self.rng.randrange(self.existing)
            key = self._document(index)["_id"]
            if roll < 0.75:
                self.collection.update_one(
                    {"_id": key},
                    {"$set": {"status": self.rng.choice(["mongo-paid", "mongo-shipped"]),
                              "note": f"app {self.rng.randint(0, 10**6)}"}, "$inc": {"app_version": 1}},
                )
                op = "update"
            elif roll < 0.9:
                self.collection.delete_one({"_id": key})
                op = "delete"
            else:
                self.collection.replace_one({"_id": key}, self._document(index) | {"recreated_in": "mongodb"}, upsert=True)
                op = "recreate"
        self.touched.add(index)
        self.ops[op] += 1
        return op

