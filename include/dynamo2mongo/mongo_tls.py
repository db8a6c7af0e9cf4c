"""TLS to MongoDB: required by default outside the sandbox (``mongo_tls`` in the table configuration).

Every client the project opens to MongoDB outside the sandbox — task, relay, monitor, dashboard — is
checked before its first use, and the MongoDB URI given to the Lambda function as well, so a
connection that lost its ``tls`` extra fails with the fix instead of sending data in the clear.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from pymongo import MongoClient

from dynamo2mongo.config import TableConfig
from dynamo2mongo.errors import Permanent

# URI options that turn TLS on by their presence (as in PyMongo's own parsing).
_TLS_IMPLIED = {"tlscafile", "tlscertificatekeyfile", "tlscertificatekeyfilepassword", "tlscrlfile"}


class TlsRequired(Permanent, ValueError):
    """A MongoDB connection without TLS where the table configuration requires it."""


def uses_tls(client: MongoClient) -> bool:
    # PyMongo exposes no public flag; the pool's SSL context is what every connection is wrapped with.
    return client.options.pool_options._ssl_context is not None


def uri_uses_tls(uri: str) -> bool:
    """Whether a MongoDB URI asks for TLS, read without resolving SRV records or connecting."""
    parts = urlsplit(uri)
    options = {k.lower(): v.lower() for k, v in parse_qsl(parts.query)}
    for key in ("tls", "ssl"):
        if key in options:
            return options[key] == "true"
    return parts.scheme == "mongodb+srv" or bool(_TLS_IMPLIED & set(options))


def _message(config: TableConfig, what: str) -> str:
    return (
        f"table {config.name!r}: {what} through connection {config.mongo_conn_id!r} does not use TLS, which the "
        f"{config.environment} environment requires. Set {{\"tls\": true}} in the connection's extras (Atlas: "
        f"use_srv, which implies TLS), or set mongo_tls: optional for this table to accept an unencrypted "
        f"connection"
    )


def tls_problem(client: MongoClient, config: TableConfig) -> str | None:
    if config.tls_required and not uses_tls(client):
        return _message(config, "the MongoDB client")
    return None


def require_tls(client: MongoClient, config: TableConfig) -> MongoClient:
    problem = tls_problem(client, config)
    if problem:
        client.close()
        raise TlsRequired(problem)
    return client


def require_tls_uri(uri: str, config: TableConfig) -> str:
    if config.tls_required and not uri_uses_tls(uri):
        raise TlsRequired(_message(config, "the MongoDB URI given to the Lambda function"))
    return uri
