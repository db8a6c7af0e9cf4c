"""Where DMS reads MongoDB from: one member of the table's replica set, its credentials kept in the
Secrets Manager secret the source endpoint names (never in the endpoint, a log or XCom)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pymongo import uri_parser
from pymongo.errors import ConfigurationError, InvalidURI

from dynamo2mongo.engines.dms.resources import DmsError
from dynamo2mongo.engines.secrets import ensure_secret

# MongoDB's authMechanism names and DMS's AuthMechanismValue; DMS offers no other mechanism.
_AUTH_MECHANISMS = {None: "default", "SCRAM-SHA-1": "scram_sha_1", "MONGODB-CR": "mongodb_cr"}

@dataclass(frozen=True)
class MongoSource:
    """Where DMS connects: one member of the replica set, and the credentials (kept out of ``repr``)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    auth_source: str = "admin"
    auth_mechanism: str = "default"
    tls: bool = False

    def secret_string(self) -> str:
        """The secret's value: the keys DMS reads from an endpoint secret (host, port, username, password)."""
        value: dict[str, Any] = {"host": self.host, "port": self.port}
        if self.username:
            value.update(username=self.username, password=self.password or "")
        return json.dumps(value, sort_keys=True)


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def mongo_source(uri: str, options: dict[str, Any], table: str) -> MongoSource:
    """Where and how DMS connects, from the URI and client options of the table's Mongo connection.

    DMS takes one server name ("For MongoDB Atlas, provide the server name for any of the servers in
    the replication set"), so the first member is used; ``mongodb+srv://`` names are resolved here.
    Neither the URI nor the parser's message goes into an error: the URI holds the password.
    """
    try:
        parsed = uri_parser.parse_uri(uri)
    except (InvalidURI, ConfigurationError, ValueError) as error:
        raise DmsError(
            f"table {table!r}: the URI of the Mongo connection cannot be parsed ({type(error).__name__}); fix the "
            f"connection's host, port, login or extras"
        ) from None
    merged = {str(k).lower(): v for k, v in parsed["options"].items()}
    merged.update({str(k).lower(): v for k, v in options.items()})
    host, port = parsed["nodelist"][0]
    mechanism = merged.get("authmechanism")
    if mechanism not in _AUTH_MECHANISMS:
        raise DmsError(
            f"table {table!r}: the Mongo connection authenticates with {mechanism}, which DMS does not offer "
            f"(it knows SCRAM-SHA-1 and MONGODB-CR only); give the connection a SCRAM-SHA-1 user for DMS, or use "
            f"sync.backward: relay"
        )
    return MongoSource(
        host=host,
        port=int(port),
        username=parsed.get("username"),
        password=parsed.get("password"),
        auth_source=str(merged.get("authsource") or parsed.get("database") or "admin"),
        auth_mechanism=_AUTH_MECHANISMS[mechanism],
        tls=uri.startswith("mongodb+srv://") or _flag(merged.get("tls")) or _flag(merged.get("ssl")),
    )


def ensure_source_secret(secretsmanager: Any, secret_id: str, value: str, table: str) -> dict[str, Any]:
    """Create the secret, or store a new version when its content differs; returns its ARN and what changed."""
    return ensure_secret(
        secretsmanager,
        secret_id,
        value,
        description="MongoDB host, port and credentials of dynamo2mongo's DMS source endpoint (written by its deploy task)",
        purpose="the DMS source endpoint",
        setting="dms.source_secret_id",
        fail=lambda message: DmsError(f"table {table!r}: {message}"),
    )
