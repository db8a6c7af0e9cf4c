"""What the forward-sync function is told: its settings, carried in its environment, and the MongoDB
URI, kept in a Secrets Manager secret (the environment holds only the secret's id).

Shipped in the deployment package (the handler reads ``FunctionSettings``), so it imports nothing the
Lambda runtime lacks: the standard library and botocore.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dynamo2mongo.engines.secrets import ensure_secret
from dynamo2mongo.errors import Permanent

if TYPE_CHECKING:
    from dynamo2mongo.config import TableConfig


class LambdaDeployError(Permanent, RuntimeError):
    """The forward-sync function cannot be packaged or deployed; the message says what to do."""


# ---- the function's environment ---------------------------------------------------------------


_ENV = {
    "table": "D2M_TABLE",
    "source_table": "D2M_SOURCE_TABLE",
    "key_attrs": "D2M_KEY_ATTRS",
    "database": "D2M_DATABASE",
    "collection": "D2M_COLLECTION",
    "metadata_database": "D2M_METADATA_DATABASE",
    "number_mapping": "D2M_NUMBER_MAPPING",
    "conflict_policy": "D2M_CONFLICT_POLICY",
    "mongo_secret_id": "D2M_MONGO_SECRET_ID",
}


@dataclass(frozen=True)
class FunctionSettings:
    """What the handler needs, carried in the function's environment: the secret's id, never the URI."""

    table: str
    source_table: str
    key_attrs: tuple[str, ...]
    database: str
    collection: str
    metadata_database: str
    number_mapping: str
    conflict_policy: str
    mongo_secret_id: str

    def to_env(self) -> dict[str, str]:
        values = {name: getattr(self, name) for name in _ENV}
        # Attribute names may hold any character, commas included.
        values["key_attrs"] = json.dumps(list(self.key_attrs))
        return {_ENV[name]: value for name, value in values.items()}

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "FunctionSettings":
        missing = [variable for variable in _ENV.values() if not environ.get(variable)]
        if missing:
            raise LambdaDeployError(
                f"the forward-sync function's environment lacks {', '.join(missing)}: redeploy it with the "
                f"DAG's forward-sync deploy task rather than editing it by hand"
            )
        values: dict[str, Any] = {name: environ[variable] for name, variable in _ENV.items()}
        values["key_attrs"] = tuple(json.loads(values["key_attrs"]))
        return cls(**values)


def mongo_secret_id(config: TableConfig) -> str:
    """The configured secret, or in the sandbox (where none is required) one named after the table."""
    return config.forward_lambda.mongo_secret_id or f"dynamo2mongo/{config.name}/mongodb-uri"


def function_settings(config: TableConfig, key_attrs: tuple[str, ...], secret_id: str) -> FunctionSettings:
    return FunctionSettings(
        table=config.name,
        source_table=config.source_table,
        key_attrs=tuple(key_attrs),
        database=config.database,
        collection=config.collection,
        metadata_database=config.metadata_database,
        number_mapping=config.number_mapping,
        conflict_policy=config.sync.conflict_policy,
        mongo_secret_id=secret_id,
    )


def mongo_uri_with_options(uri: str, options: Mapping[str, Any]) -> str:
    """One URI that carries the client options too, for a function that has nothing else to read them from.

    Airflow's Mongo connection keeps options (tls, replicaSet, authSource...) in its extras, which the
    provider's hook passes to MongoClient as keyword arguments; every MongoClient option is also a URI
    option, so they go into the query string.
    """
    if not options:
        return uri
    query = []
    for name, value in sorted(options.items()):
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif not isinstance(value, (str, int, float)):
            raise LambdaDeployError(
                f"the Mongo connection's extra {name!r} ({type(value).__name__}) cannot be written into a URI for the "
                f"forward-sync function; use a plain value (string, number or boolean)"
            )
        # ':' and ',' separate the parts of authMechanismProperties and readPreferenceTags.
        query.append(f"{name}={urllib.parse.quote(str(value), safe=':,')}")
    separator = "&" if "?" in uri else "/?" if uri.count("/") == 2 else "?"
    return uri + separator + "&".join(query)


def ensure_mongo_secret(secretsmanager: Any, secret_id: str, mongo_uri: str) -> dict[str, Any]:
    """Create the secret, or store a new version when the URI differs; returns its ARN and what changed."""
    return ensure_secret(
        secretsmanager,
        secret_id,
        mongo_uri,
        description="MongoDB URI of dynamo2mongo's forward-sync Lambda function (written by its deploy task)",
        purpose="the forward-sync function",
        setting="forward_lambda.mongo_secret_id",
        fail=LambdaDeployError,
    )
