"""Change stream read time per batch against the oplog's length, on the sandbox's MongoDB server.

    .venv/bin/python -m bench.oplog [--entries N] [--rounds N] [--changes N] [--batch N]

Starts two sandbox servers (mongo-java-server with the sandbox's change log; $MONGO_URI is not used:
the point is the sandbox server's oplog) and fills one with ``--entries`` oplog entries and the other
with ten times as many. Each round, on each server in turn, writes ``--changes`` updates to a watched
collection and reads them as the backward relay does (``fullDocument: updateLookup``, getMore batches
of ``--batch`` events), timing each batch. It prints the median and the spread (min-max) of the
per-batch time on each server, the load average, and the ratio, which must stay within 20%: a getMore
reads only the entries written since the previous one.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterator

from pymongo import MongoClient, UpdateOne

from dynamo2mongo.sandbox.servers import mongo_server

LIMIT = 1.2


@contextlib.contextmanager
def sandbox_server() -> Iterator[str]:
    saved = os.environ.pop("MONGO_URI", None)
    try:
        with mongo_server() as uri:
            yield uri
    finally:
        if saved is not None:
            os.environ["MONGO_URI"] = saved


def fill(client: MongoClient, entries: int) -> None:
    """``entries`` oplog entries: inserts into a collection nobody watches."""
    filler = client["bench_oplog"]["filler"]
    step = 10_000
    for start in range(0, entries, step):
        filler.insert_many([{"_id": n, "pad": "x" * 64} for n in range(start, min(entries, start + step))], ordered=False)


class Watched:
    """A watched collection of ``changes`` documents and a stream on it, opened once, as a relay keeps it."""

    def __init__(self, client: MongoClient, changes: int, batch: int) -> None:
        self.collection = client["bench_oplog"]["watched"]
        self.collection.insert_many([{"_id": n, "v": 0} for n in range(changes)])
        self.changes = changes
        self.batch = batch
        self.round = 0
        self.stream = self.collection.watch(full_document="updateLookup", batch_size=batch, max_await_time_ms=100)

    def round_of_batches(self) -> list[float]:
        """Seconds per getMore batch while reading one round's changes."""
        self.round += 1
        self.collection.bulk_write([UpdateOne({"_id": n}, {"$set": {"v": self.round}}) for n in range(self.changes)])
        seconds: list[float] = []
        # Rounds hold whole batches, so each batch's events cost exactly one getMore.
        for _ in range(self.changes // self.batch):
            started = time.perf_counter()
            read = 0
            while read < self.batch:
                if self.stream.try_next() is not None:
                    read += 1
            seconds.append(time.perf_counter() - started)
        return seconds


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.2f} ms, spread {min(values) * 1000:.2f}-{max(values) * 1000:.2f} ms"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.oplog", description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=20_000, help="oplog entries on the smaller server")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--changes", type=int, default=2_000, help="changes written and read per round")
    parser.add_argument("--batch", type=int, default=200, help="events per getMore batch")
    args = parser.parse_args(argv)
    if args.rounds < 5:
        parser.error("--rounds must be at least 5")
    if args.changes % args.batch:
        parser.error("--changes must be a multiple of --batch")

    print(f"load average at start: {' / '.join(f'{v:.2f}' for v in os.getloadavg())} (nproc {os.cpu_count()})")
    with sandbox_server() as fresh_uri, sandbox_server() as long_uri:
        fresh, long = MongoClient(fresh_uri), MongoClient(long_uri)
        fill(fresh, args.entries)
        fill(long, 10 * args.entries)
        servers = {"fresh": Watched(fresh, args.changes, args.batch), "10x oplog": Watched(long, args.changes, args.batch)}
        per_round: dict[str, list[float]] = {name: [] for name in servers}
        for _ in range(args.rounds):
            for name, watched in servers.items():
                per_round[name].append(statistics.median(watched.round_of_batches()))
        for watched in servers.values():
            watched.stream.close()
        fresh.close()
        long.close()

    print(f"{args.rounds} rounds of {args.changes} changes, read in batches of {args.batch} events "
          f"(the median batch time of each round):")
    for name, values in per_round.items():
        entries = args.entries if name == "fresh" else 10 * args.entries
        print(f"  {name:>9} ({entries:,} filler oplog entries): {spread(values)}")
    ratio = statistics.median(per_round["10x oplog"]) / statistics.median(per_round["fresh"])
    print(f"load average at end: {' / '.join(f'{v:.2f}' for v in os.getloadavg())}")
    verdict = "within" if ratio <= LIMIT else "NOT within"
    print(f"ratio 10x oplog / fresh: {ratio:.2f} ({verdict} {LIMIT - 1:.0%})")
    if ratio > LIMIT:
        sys.exit(1)


if __name__ == "__main__":
    main()
