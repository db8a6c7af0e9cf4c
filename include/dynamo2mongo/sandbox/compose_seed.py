"""The docker-compose stack's one-shot seeder: the export bucket, the sample table and its items.

The steps the sandbox run (dynamo2mongo.sandbox.main) takes before it starts Airflow, against the moto
server that $AWS_ENDPOINT_URL names. A table that already holds items is left alone, so a second
``docker compose up`` writes nothing: rewritten items would reach the stream as changes.
"""

from __future__ import annotations

import argparse
from typing import Any

import boto3
from botocore.exceptions import ClientError

from dynamo2mongo.config import TableConfig, load_config
from dynamo2mongo.sandbox import sample


def prepare(session: Any, config: TableConfig, items: int) -> float | None:
    """Create the bucket and the table, seed ``items`` items; returns the seconds seeding took, or
    None when the table already held items."""
    location = {}
    if config.region != "us-east-1":
        location["CreateBucketConfiguration"] = {"LocationConstraint": config.region}
    try:
        session.client("s3").create_bucket(Bucket=config.export.s3_bucket, **location)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise
    dynamodb = session.client("dynamodb")
    sample.create_table(dynamodb, config.source_table)
    if dynamodb.scan(TableName=config.source_table, Limit=1)["Items"]:
        return None
    return sample.seed(lambda: session.client("dynamodb"), config.source_table, items)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dynamo2mongo.sandbox.compose_seed", description=__doc__)
    parser.add_argument("--table", default="sample_orders", help="the table's name in the configuration")
    parser.add_argument("--items", type=int, default=100_000, help="items to seed (default 100000)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    tables = {t.name: t for t in load_config()}
    if args.table not in tables:
        raise SystemExit(f"table {args.table!r} is not in the table configuration; known: {', '.join(sorted(tables))}")
    config = tables[args.table]
    seconds = prepare(boto3.session.Session(region_name=config.region), config, args.items)
    if seconds is None:
        print(f"{config.source_table} already holds items: nothing to seed", flush=True)
    else:
        print(f"seeded {args.items:,} items into {config.source_table} in {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main()
