"""Every client the glue uses, made in one place from the table's Airflow connections.

AWS clients come from the Amazon provider's ``AwsBaseHook`` (the connection's credentials, region and
endpoint URL). MongoDB clients take the Mongo provider's hook for its URI and client options only,
and are made by the domain's factory (``dynamo2mongo.connections``): the hook's own ``get_conn()``
would give a client that is neither TLS-checked nor timezone-aware.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.mongo.hooks.mongo import MongoHook
from pymongo import MongoClient
from pymongo.database import Database

from dynamo2mongo import connections
from dynamo2mongo.config import TableConfig
from dynamo2mongo.mongo_tls import TlsRequired, tls_problem
from dynamo2mongo.state import StateStore


def mongo_settings(config: TableConfig) -> tuple[str, dict[str, Any]]:
    """The URI and client options of the table's Mongo connection, as the provider's hook reads them."""
    hook = MongoHook(mongo_conn_id=config.mongo_conn_id)
    options = dict(hook.extras)
    if hook.allow_insecure:
        options["tlsAllowInvalidCertificates"] = True
    return hook.uri, options


def mongo_client(config: TableConfig) -> MongoClient:
    uri, options = mongo_settings(config)
    return connections.mongo_client(uri, config, **options)


class Connections:
    """The clients of one table, each made on first use and all closed together (``with``, or ``close()``)."""

    def __init__(self, config: TableConfig) -> None:
        self.config = config
        self._aws: dict[str, Any] = {}
        self._mongo: MongoClient | None = None

    def aws(self, service: str) -> Any:
        if service not in self._aws:
            self._aws[service] = AwsBaseHook(
                aws_conn_id=self.config.aws_conn_id, region_name=self.config.region, client_type=service
            ).get_conn()
        return self._aws[service]

    def mongo(self) -> MongoClient:
        if self._mongo is None:
            self._mongo = mongo_client(self.config)
        return self._mongo

    def meta(self) -> Database:
        return self.mongo()[self.config.metadata_database]

    def state(self) -> StateStore:
        return StateStore(self.meta(), self.config.name)

    def close(self) -> None:
        if self._mongo is not None:
            self._mongo.close()
            self._mongo = None

    def __enter__(self) -> "Connections":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextlib.contextmanager
def clients_by_connection() -> Iterator[Callable[[TableConfig], MongoClient]]:
    """For code that reads several tables at once (monitor, dashboard): yields ``client_for(table)``,
    one client per Mongo connection, closed on exit."""
    with contextlib.ExitStack() as stack:
        clients: dict[str, MongoClient] = {}

        def client_for(table: TableConfig) -> MongoClient:
            client = clients.get(table.mongo_conn_id)
            if client is None:
                client = clients[table.mongo_conn_id] = stack.enter_context(mongo_client(table))
            elif problem := tls_problem(client, table):
                # Shared with tables that accept plain connections: refused for this one only.
                raise TlsRequired(problem)
            return client

        yield client_for
