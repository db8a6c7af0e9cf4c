"""Command line (also ``python -m dynamo2mongo``):

- ``dynamo2mongo relay forward|backward --table NAME``: run a sync relay in the foreground;
- ``dynamo2mongo status [--json]``: where every table of the configuration stands;
- ``dynamo2mongo quarantine list --table NAME [--direction forward|backward]``: the changes sync
  could not write, newest first, one per line: key, direction, reason, count, last seen;
- ``dynamo2mongo quarantine retry --table NAME [--direction D]``: once the data is fixed, sync each
  quarantined key's current state through the relays' guards (dynamo2mongo.sync.requeue);
- ``dynamo2mongo pools [--apply]``: the Airflow pools the configuration asks for, as ``airflow pools
  set`` commands, or created in the Airflow metadata database of this environment.

A command that cannot reach MongoDB or AWS, or lacks credentials or permissions, prints one line
naming the endpoint and the fix and exits 3 (``dynamo2mongo.cli_errors``); a configuration error
exits 2. ``--timeout`` (or $D2M_TIMEOUT_SECONDS) bounds the wait for MongoDB and AWS: 5 s by default.

The relay reads the table configuration (``--config`` or $D2M_CONFIG), takes AWS credentials from
the standard AWS chain (environment, profile, instance role; ``AWS_ENDPOINT_URL`` for an
emulator) and MongoDB from ``--mongo-uri`` or $MONGO_URI, so no secret is ever on its command line
unless the operator puts it there.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from typing import Any

from dynamo2mongo.config import ConfigError, TableConfig, load_config, load_configuration

log = logging.getLogger("dynamo2mongo")


def _table(args: argparse.Namespace) -> TableConfig:
    tables = {t.name: t for t in load_config(args.config)}
    if args.table not in tables:
        raise SystemExit(f"table {args.table!r} is not in the table configuration; known: {', '.join(sorted(tables))}")
    return tables[args.table]


def _timeout(args: argparse.Namespace) -> float | None:
    """How long the command waits for MongoDB or AWS: a few seconds for the one-shot commands; a relay
    keeps the drivers' own (it rides out a primary election or a throttled minute) unless
    ``--timeout`` is given."""
    from dynamo2mongo.cli_errors import DEFAULT_TIMEOUT_SECONDS

    if args.timeout is not None or args.command == "relay":
        return args.timeout
    return float(os.environ.get("D2M_TIMEOUT_SECONDS") or DEFAULT_TIMEOUT_SECONDS)


def _mongo_uri(args: argparse.Namespace) -> str:
    """The MongoDB URI, with the command's timeout."""
    from dynamo2mongo.cli_errors import with_timeout

    uri = args.mongo_uri or os.environ.get("MONGO_URI")
    if not uri:
        raise SystemExit("set MONGO_URI (or --mongo-uri) to the MongoDB the table migrates to")
    seconds = _timeout(args)
    return uri if seconds is None else with_timeout(uri, seconds)


def _aws(args: argparse.Namespace, config: TableConfig, service: str) -> Any:
    """A boto3 client for the table's region, giving up within the command's timeout (one retry)."""
    import boto3
    from botocore.config import Config

    seconds = _timeout(args)
    options = {} if seconds is None else {"config": Config(
        connect_timeout=seconds, read_timeout=seconds, retries={"total_max_attempts": 2, "mode": "standard"})}
    return boto3.session.Session(region_name=config.region).client(service, **options)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        log.info("received %s: finishing the current batch, then stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def relay_forward(args: argparse.Namespace) -> int:
    from dynamo2mongo.connections import mongo_client
    from dynamo2mongo.sync.checkpoints import RelayStatus
    from dynamo2mongo.sync.relay.forward import ForwardRelay, RelayError

    config = _table(args)
    client = mongo_client(_mongo_uri(args), config)
    relay = ForwardRelay(
        config,
        _aws(args, config, "dynamodb"),
        _aws(args, config, "dynamodbstreams"),
        client,
        poll_seconds=args.poll_seconds,
        stop=_stop_on_signals(),
    )
    try:
        totals = relay.run()
    except RelayError as error:
        log.error("%s", error)
        relay.heartbeat.beat(RelayStatus.FAILED, force=True, error=str(error))
        return 2
    finally:
        client.close()
    log.info("forward relay of %s stopped after %d batches: %s", config.name, totals.batches, totals.result.counts())
    return 0


def relay_backward(args: argparse.Namespace) -> int:
    from dynamo2mongo.connections import mongo_client
    from dynamo2mongo.sync.dynamodb_items import BackwardApplyError
    from dynamo2mongo.sync.events import StreamEnded
    from dynamo2mongo.sync.checkpoints import RelayStatus
    from dynamo2mongo.sync.relay.backward import BackwardRelay
    from dynamo2mongo.sync.relay.forward import RelayError

    config = _table(args)
    client = mongo_client(_mongo_uri(args), config)
    relay = BackwardRelay(config, _aws(args, config, "dynamodb"), client, stop=_stop_on_signals())
    try:
        totals = relay.run()
    except (RelayError, BackwardApplyError, StreamEnded) as error:
        log.error("%s", error)
        relay.heartbeat.beat(RelayStatus.FAILED, force=True, error=str(error))
        return 2
    finally:
        client.close()
    log.info("backward relay of %s stopped after %d batches: %s", config.name, relay.batches, totals.counts())
    return 0


def _json_value(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


def status(args: argparse.Namespace) -> int:
    from dynamo2mongo.connections import mongo_client
    from dynamo2mongo.operations.status import collect, render

    configuration = load_configuration(args.config)
    client = mongo_client(_mongo_uri(args), *configuration.tables)
    try:
        rows = collect(client, configuration)
    finally:
        client.close()
    print(json.dumps(rows, default=_json_value, indent=2) if args.json else render(rows))
    return 0


def quarantine_list(args: argparse.Namespace) -> int:
    from bson import json_util

    from dynamo2mongo.connections import mongo_client
    from dynamo2mongo.sync.quarantine import Quarantine

    config = _table(args)
    client = mongo_client(_mongo_uri(args), config)
    try:
        entries = Quarantine(client[config.metadata_database], config.name).entries(args.direction, args.limit)
    finally:
        client.close()
    for entry in entries:
        key = json_util.dumps(entry["key"], json_options=json_util.RELAXED_JSON_OPTIONS)
        print("\t".join((key, entry["direction"], entry["reason"], str(entry["count"]),
                         _json_value(entry["last_at"]))))
    log.info("%d quarantined change(s) of %s%s", len(entries), config.name,
             f" ({args.direction})" if args.direction else "")
    return 0


def quarantine_retry(args: argparse.Namespace) -> int:
    from dynamo2mongo.connections import mongo_client
    from dynamo2mongo.state import StateStore
    from dynamo2mongo.sync.requeue import retry

    config = _table(args)
    client = mongo_client(_mongo_uri(args), config)
    try:
        key_attrs = StateStore(client[config.metadata_database], config.name).migration().key_attrs
        if not key_attrs:
            raise SystemExit(f"table {config.name!r}: the migration state names no key; run the DAG's preflight first")
        dynamodb = _aws(args, config, "dynamodb")
        result = retry(config, key_attrs, dynamodb, client, args.direction)
    finally:
        client.close()
    log.info("%s: %d quarantined change(s) retried, %d synced, %d still quarantined (see `quarantine list`)",
             config.name, result.retried, result.synced, result.still_quarantined)
    return 1 if result.still_quarantined else 0


def pools(args: argparse.Namespace) -> int:
    from dynamo2mongo.operations.plan import pool_specs, pools_import_document, pools_set_commands

    configuration = load_configuration(args.config)
    if configuration.pools is None:
        print("the table configuration has no 'pools': every task runs in Airflow's default_pool")
        return 0
    specs = pool_specs(configuration.pools)
    print("\n".join(pools_set_commands(specs)))
    if not args.apply:
        return 0
    # One `airflow pools import` creates or resizes every pool in a single Airflow start.
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="dynamo2mongo-pools-") as document:
        json.dump(pools_import_document(specs), document)
        document.flush()
        result = subprocess.run([sys.executable, "-m", "airflow", "pools", "import", document.name],
                                capture_output=True, text=True)
    if result.returncode != 0:
        log.error("`airflow pools import` failed (exit code %d): %s", result.returncode,
                  (result.stderr or result.stdout)[-2000:])
        return result.returncode
    log.info("created or resized the pools %s", ", ".join(spec.name for spec in specs))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line; deploy files are checked against it (tests/unit/test_deploy_files.py)."""
    parser = argparse.ArgumentParser(prog="dynamo2mongo", description="dynamo2mongo operations")
    parser.add_argument("--config", help="table configuration file (default: $D2M_CONFIG or config/tables.yaml)")
    parser.add_argument("--log-level", default="INFO",
                        help="the level of dynamo2mongo's own log (debug: every key's sync decision)")
    parser.add_argument("--timeout", type=float,
                        help="seconds to wait for MongoDB before giving up (default: $D2M_TIMEOUT_SECONDS or 5; "
                             "relays: the driver's 30)")
    commands = parser.add_subparsers(dest="command", required=True)
    relay = commands.add_parser("relay", help="run a sync relay in the foreground")
    directions = relay.add_subparsers(dest="direction", required=True)
    forward = directions.add_parser("forward", help="DynamoDB stream -> MongoDB")
    forward.add_argument("--table", required=True, help="the table's name in the configuration")
    forward.add_argument("--mongo-uri", help="MongoDB URI (default: $MONGO_URI)")
    forward.add_argument("--poll-seconds", type=float, default=1.0, help="pause when every shard is at its tip")
    forward.set_defaults(run=relay_forward)
    backward = directions.add_parser("backward", help="MongoDB change stream -> DynamoDB")
    backward.add_argument("--table", required=True, help="the table's name in the configuration")
    backward.add_argument("--mongo-uri", help="MongoDB URI (default: $MONGO_URI)")
    backward.set_defaults(run=relay_backward)
    state = commands.add_parser("status", help="phase, writer, lag, conflicts, verification and next step per table")
    state.add_argument("--mongo-uri", help="MongoDB URI (default: $MONGO_URI)")
    state.add_argument("--json", action="store_true", help="print JSON instead of a table")
    state.set_defaults(run=status)
    quarantine = commands.add_parser("quarantine", help="changes sync could not write to the other side")
    actions = quarantine.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="one line per quarantined change: key, direction, reason, count, "
                                               "last seen")
    listing.add_argument("--table", required=True, help="the table's name in the configuration")
    listing.add_argument("--direction", choices=("forward", "backward"), help="only this direction's changes")
    listing.add_argument("--limit", type=int, help="at most this many, newest first")
    listing.add_argument("--mongo-uri", help="MongoDB URI (default: $MONGO_URI)")
    listing.set_defaults(run=quarantine_list)
    again = actions.add_parser("retry", help="sync each quarantined key's current state again, after the data is "
                                             "fixed; exits 1 while any stays quarantined")
    again.add_argument("--table", required=True, help="the table's name in the configuration")
    again.add_argument("--direction", choices=("forward", "backward"), help="only this direction's changes")
    again.add_argument("--mongo-uri", help="MongoDB URI (default: $MONGO_URI)")
    again.set_defaults(run=quarantine_retry)
    pool = commands.add_parser("pools", help="print the `airflow pools set` commands for the configured pools")
    pool.add_argument("--apply", action="store_true",
                      help="also create or resize them with `airflow pools import` (needs Airflow's environment)")
    pool.set_defaults(run=pools)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The level is the project's own: at debug, botocore and pymongo would drown the sync's decisions.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    log.setLevel(args.log_level.upper())
    try:
        return args.run(args)
    except ConfigError as error:
        log.error("%s", error)
        return 2
    except Exception as error:  # one line, never a traceback (unless asked for with --log-level debug)
        from dynamo2mongo.cli_errors import describe

        log.debug("traceback", exc_info=True)
        line = describe(error, getattr(args, "mongo_uri", None) or os.environ.get("MONGO_URI"))
        log.error("%s", line or f"{type(error).__name__}: {error} (--log-level debug shows the traceback)")
        return 3


if __name__ == "__main__":
    sys.exit(main())
