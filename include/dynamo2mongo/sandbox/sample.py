"""The sandbox's sample table: a composite key, one LSI, two GSIs and every DynamoDB type.

Items are generated deterministically from their index, so a test can rebuild any expected item.
"""

from __future__ import annotations

import concurrent.futures
import random
import time
from typing import Any

KEY_ATTRS = ("pk", "sk")


def table_definition(name: str) -> dict[str, Any]:
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
            {"AttributeName": "status", "AttributeType": "S"},
            {"AttributeName": "customer_id", "AttributeType": "S"},
            {"AttributeName": "created_at", "AttributeType": "N"},
            {"AttributeName": "sku", "AttributeType": "B"},
        ],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "LocalSecondaryIndexes": [
            {
                "IndexName": "by_status",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "status", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "by_customer",
                "KeySchema": [
                    {"AttributeName": "customer_id", "KeyType": "HASH"},
                    {"AttributeName": "created_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                # Sparse: only items that carry a sku are in this index.
                "IndexName": "by_sku",
                "KeySchema": [{"AttributeName": "sku", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
    }


def item(index: int) -> dict[str, Any]:
    """Item number ``index`` in DynamoDB wire format; every type appears within any 16 items."""
    rng = random.Random(index)
    value: dict[str, Any] = {
        "pk": {"S": f"tenant#{index % 997:04d}"},
        "sk": {"N": str(index)},
        "status": {"S": ("new", "paid", "shipped", "returned")[index % 4]},
        "customer_id": {"S": f"customer-{index % 5003}"},
        "created_at": {"N": str(1_700_000_000 + index)},
        "total": {"N": f"{rng.randint(0, 10**6)}.{rng.randint(0, 99):02d}"},
        "paid": {"BOOL": index % 3 == 0},
        "note": {"S": rng.choice(["", "rush", "gift ✓", "naïve café", "多言語", "tab\tand\nnewline"])},
        "lines": {
            "L": [
                {"M": {"sku": {"S": f"SKU-{rng.randint(1, 500)}"}, "qty": {"N": str(rng.randint(1, 9))}}}
                for _ in range(1 + index % 3)
            ]
        },
        "tags": {"SS": sorted({f"t{rng.randint(0, 20)}" for _ in range(1 + index % 4)})},
    }
    kind = index % 16
    if kind == 0:
        value["big"] = {"N": "12345678901234567890123456789012345678"}
    elif kind == 1:
        value["tiny"] = {"N": "1E-130"}
    elif kind == 2:
        value["huge"] = {"N": "9.9999999999999999999999999999999999999E+125"}
    elif kind == 3:
        value["gone"] = {"NULL": True}
    elif kind == 4:
        value["blob"] = {"B": rng.randbytes(1 + index % 64)}
    elif kind == 5:
        value["scores"] = {"NS": sorted({str(rng.randint(-50, 50)), "0.5", "-1.25E+3"})}
    elif kind == 6:
        value["chunks"] = {"BS": [b"\x00\x01", rng.randbytes(8)]}
    elif kind == 7:
        value["profile"] = {
            "M": {
                "prefs": {"M": {"langs": {"SS": ["en", "fr"]}, "a.b": {"S": "dotted"}, "$ref": {"S": "dollar"}}},
                "history": {"L": [{"NS": ["1", "2"]}, {"NULL": True}, {"BOOL": False}, {"L": []}, {"M": {}}]},
            }
        }
    elif kind == 8:
        value["negative"] = {"N": "-0.000000000000000000000000000000000001"}
    elif kind == 9:
        value["int64"] = {"N": str(2**63 - 1)}
    elif kind == 10:
        value["beyond_int64"] = {"N": str(2**64)}
    if index % 5 == 0:
        value["sku"] = {"B": f"sku-{index % 211}".encode()}
    return value


def create_table(dynamodb: Any, name: str) -> None:
    """Create the sample table and wait until it is ACTIVE; an existing table is left as it is."""
    existing = dynamodb.list_tables().get("TableNames", [])
    if name not in existing:
        dynamodb.create_table(**table_definition(name))
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def _write(dynamodb: Any, name: str, start: int, stop: int) -> None:
    for low in range(start, stop, 25):
        requests = [{"PutRequest": {"Item": item(i)}} for i in range(low, min(low + 25, stop))]
        pending = {name: requests}
        delay = 0.05
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if pending:
                time.sleep(delay)
                delay = min(delay * 2, 2.0)


def seed(dynamodb_factory: Any, name: str, count: int, workers: int = 8) -> float:
    """Write items 0..count-1 with parallel BatchWriteItem calls; returns the seconds taken."""
    started = time.monotonic()
    step = max(25, -(-count // workers))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = [
            pool.submit(_write, dynamodb_factory(), name, low, min(low + step, count))
            for low in range(0, count, step)
        ]
        for future in futures:
            future.result()
    return time.monotonic() - started
