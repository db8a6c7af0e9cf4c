"""The one factory of MongoDB clients: the CLI, the relays and the Airflow glue all get theirs here.

Each client is checked for TLS before its first use (``mongo_tls``), so a connection that lost its
``tls`` option fails with the fix instead of sending data in the clear, and each returns
timezone-aware datetimes (UTC), so a date read back from the metadata database compares with
``now()`` without mending. The glue passes its Airflow connection's URI and client options
(``plugins/dynamo2mongo_airflow/connections.py``); the CLI passes ``$MONGO_URI``.
"""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient

from dynamo2mongo.config import TableConfig
from dynamo2mongo.mongo_tls import require_tls


def mongo_client(uri: str, table: TableConfig, *more_tables: TableConfig, **options: Any) -> MongoClient:
    """A client for ``uri`` with ``options`` (MongoClient's keyword arguments), refused with
    ``TlsRequired`` unless it uses TLS where any of the tables it serves requires it."""
    client = MongoClient(uri, tz_aware=True, **options)
    for config in (table, *more_tables):
        require_tls(client, config)
    return client
