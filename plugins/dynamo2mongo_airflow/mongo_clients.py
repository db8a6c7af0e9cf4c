"""MongoDB clients for code that reads several tables at once (monitor, dashboard): one per connection."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from airflow.providers.mongo.hooks.mongo import MongoHook

from dynamo2mongo.config import TableConfig
from dynamo2mongo.mongo_tls import require_tls


@contextlib.contextmanager
def clients_by_connection() -> Iterator[Any]:
    """Yields ``client_for(table)``: the client of the table's connection, TLS-checked, closed on exit."""
    with contextlib.ExitStack() as stack:
        clients: dict[str, Any] = {}

        def client_for(table: TableConfig) -> Any:
            if table.mongo_conn_id not in clients:
                hook = stack.enter_context(MongoHook(mongo_conn_id=table.mongo_conn_id))
                clients[table.mongo_conn_id] = require_tls(hook.get_conn(), table)
            return clients[table.mongo_conn_id]

        yield client_for
