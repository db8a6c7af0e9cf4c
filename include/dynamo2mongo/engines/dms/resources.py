"""What every DMS resource of a table shares: the errors, the identifiers and tag, the settings a
resource cannot do without, and how to read DMS's answer against what was asked for."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from dynamo2mongo.config import DmsConfig, TableConfig
from dynamo2mongo.errors import Permanent, Transient

TAG_TABLE = "dynamo2mongo:table"
_NOT_IN_IDENTIFIER = re.compile(r"[^A-Za-z0-9-]+")
_MAX_IDENTIFIER = 255


class DmsError(Permanent, RuntimeError):
    """Backward sync on DMS cannot be deployed or operated; the message names the table, the resource
    and what to do. A retry does not help."""


class DmsTimeout(Transient, DmsError):
    """A DMS resource did not reach the state waited for in time; a retry may."""


def identifier(settings: DmsConfig, config: TableConfig, role: str) -> str:
    """A DMS identifier (letters, digits, single hyphens, starting with a letter) for one of the table's
    resources; a short hash of the raw name keeps two table names that clean up alike apart, and the
    role stays last whatever is cut."""
    raw = f"{settings.identifier_prefix}-{config.name}"
    body = re.sub(r"-{2,}", "-", _NOT_IN_IDENTIFIER.sub("-", raw)).strip("-")
    if not body[:1].isalpha():
        body = f"d-{body}"
    if body == raw and len(raw) + 1 + len(role) <= _MAX_IDENTIFIER:
        return f"{raw}-{role}"
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:8]
    room = _MAX_IDENTIFIER - len(digest) - len(role) - 2
    return f"{body[:room].rstrip('-')}-{digest}-{role}"


def source_secret_id(settings: DmsConfig, config: TableConfig) -> str:
    return settings.source_secret_id or f"dynamo2mongo/{config.name}/dms-mongodb-source"


def required(settings: DmsConfig, key: str, config: TableConfig, why: str) -> str:
    value = getattr(settings, key)
    if not value:
        raise DmsError(f"table {config.name!r}: 'dms.{key}' is not set; {why}")
    return value


def contains(current: Any, wanted: Any) -> bool:
    """Whether ``current`` holds everything ``wanted`` says; DMS answers with defaults filled in."""
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(contains(current.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(current, list) and all(any(contains(c, w) for c in current) for w in wanted)
    return current == wanted


def waiter_config(settings: DmsConfig) -> dict[str, int]:
    return {"Delay": settings.poll_seconds, "MaxAttempts": max(1, settings.max_wait_seconds // settings.poll_seconds)}
