"""Backward sync on AWS DMS (DESIGN §2 and §6, ``sync.backward: dms``): a MongoDB source endpoint whose
credentials live in Secrets Manager, a DynamoDB target endpoint, and a CDC-only replication task.

Every ``ensure_*`` function finds its resource by identifier, compares it with what the configuration
asks for and changes only the difference, so a second deployment with the same settings calls no
Create/Modify API at all. The functions take the table's ``dms`` section (``settings``) apart from the
table's configuration so that the sandbox can hand in the replication instance and roles it made in
the emulator (``dynamo2mongo.sandbox.engines``).

By idea: ``resources`` (errors, identifiers, required settings), ``source`` (where DMS reads MongoDB and
the credentials secret), ``endpoints``, ``mappings`` (table mode, the mark filter, task settings) and
``task`` (the replication task's lifecycle); ``deploy`` puts them together. The names below are the
engine's interface; the glue and the tests use nothing else.
"""

from __future__ import annotations

from typing import Any

from dynamo2mongo.config import DmsConfig, TableConfig
from dynamo2mongo.engines.dms.endpoints import check_connections, ensure_source_endpoint, ensure_target_endpoint
from dynamo2mongo.engines.dms.mappings import table_mappings, task_settings
from dynamo2mongo.engines.dms.resources import DmsError, DmsTimeout, identifier, source_secret_id
from dynamo2mongo.engines.dms.source import MongoSource, ensure_source_secret, mongo_source
from dynamo2mongo.engines.dms.task import ensure_replication_task, resume_task, start_task, stop_task, task_status

__all__ = [
    "DmsError",
    "DmsTimeout",
    "MongoSource",
    "check_connections",
    "deploy",
    "ensure_replication_task",
    "ensure_source_endpoint",
    "ensure_source_secret",
    "ensure_target_endpoint",
    "identifier",
    "mongo_source",
    "resume_task",
    "source_secret_id",
    "start_task",
    "stop_task",
    "table_mappings",
    "task_settings",
    "task_status",
]


def deploy(
    dms: Any,
    secretsmanager: Any,
    settings: DmsConfig,
    config: TableConfig,
    source: MongoSource,
    key_attrs: tuple[str, ...],
    key_types: dict[str, str],
) -> dict[str, Any]:
    """Secret, both endpoints (tested from the instance), and the task; safe to repeat. Returns facts
    fit for logs and XCom: ARNs, identifiers and what changed, never a credential."""
    mappings = table_mappings(config, key_attrs, key_types)
    source_endpoint = ensure_source_endpoint(dms, secretsmanager, settings, config, source)
    target_endpoint = ensure_target_endpoint(dms, settings, config)
    tested = check_connections(dms, settings, config, [source_endpoint, target_endpoint])
    task = ensure_replication_task(dms, settings, config, source_endpoint["arn"], target_endpoint["arn"], mappings)
    return {"source_endpoint": source_endpoint, "target_endpoint": target_endpoint, "tested": tested, "task": task}
