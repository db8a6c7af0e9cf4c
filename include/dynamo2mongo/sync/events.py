"""MongoDB change events as backward sync sees them, and the exact images it asks the server for."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from dynamo2mongo.errors import Permanent
from dynamo2mongo.mapping import RESERVED
from dynamo2mongo.sync.echo import TOMBSTONE, identity
from dynamo2mongo.sync.records import mark_of

ENDING_EVENTS = ("invalidate", "drop", "rename", "dropDatabase")


class StreamEnded(Permanent, RuntimeError):
    """The change stream was invalidated (collection dropped or renamed); syncing cannot go on."""


@dataclass(frozen=True)
class Event:
    id: Any
    op: str  # "upsert", "delete" or "gone"
    document: dict[str, Any] | None
    at: dt.datetime
    token: Any
    kind: str = "update"  # the change event's operationType
    before: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    # The cluster time as one number (seconds << 32 | increment); None for a change made up by a
    # retry, which is never a replay.
    position: int | None = None

    @property
    def identity(self) -> bytes:
        return identity(self.id)

    @property
    def event_id(self) -> str:
        return str((self.token or {}).get("_data") if isinstance(self.token, dict) else self.token)

    @property
    def write_token(self) -> str | None:
        """The ledger slot of the sync write this event may be: a delete's tombstone, or the token in
        the mark of an inserted or replacing document, which is that write's own (an update event's
        post-image is never a sync write: the sync only inserts and replaces)."""
        if self.op == "delete":
            return TOMBSTONE
        if self.op == "upsert" and self.kind in ("insert", "replace"):
            mark = mark_of(self.document)
            return mark.get("w") or mark.get("seq") or None
        return None


def images_enabled(collection: Collection) -> bool:
    """Whether the collection keeps each change's pre- and post-image (``changeStreamPreAndPostImages``)."""
    for info in collection.database.list_collections(filter={"name": collection.name}):
        return bool(((info.get("options") or {}).get("changeStreamPreAndPostImages") or {}).get("enabled"))
    return False


def ensure_images(collection: Collection) -> str | None:
    """Turn on exact pre- and post-images for the collection's change events (MongoDB 6+); None when
    they are on, else why they cannot be (backward sync then works with looked-up post-images)."""
    option = {"changeStreamPreAndPostImages": {"enabled": True}}
    try:
        if images_enabled(collection):
            return None
        if collection.name in collection.database.list_collection_names(filter={"name": collection.name}):
            collection.database.command({"collMod": collection.name, **option})
        else:
            collection.database.create_collection(collection.name, **option)
    except OperationFailure as error:
        return (f"{collection.full_name}: exact change-event images cannot be enabled ({error}); MongoDB 6 or later "
                f"and the collMod privilege are needed. Without them a MongoDB change that forward sync overwrote "
                f"before backward sync read it cannot win a conflict")
    return None if images_enabled(collection) else f"{collection.full_name}: the server ignored changeStreamPreAndPostImages"


def to_event(change: dict[str, Any], collection_name: str) -> Event | None:
    """One change-stream event; None for events that change no document (e.g. createIndexes)."""
    operation = change.get("operationType")
    if operation in ENDING_EVENTS:
        ns = change.get("ns") or {}
        if ns.get("coll") and ns["coll"] != collection_name:
            return None
        raise StreamEnded(
            f"the change stream of {collection_name!r} reports {operation!r}: the collection was dropped or "
            f"renamed, so backward sync cannot go on. Restore the collection (or the configuration), clear the "
            f"relay's checkpoint, and verify both sides before restarting"
        )
    cluster_time = change.get("clusterTime")
    at = change.get("wallTime") or (cluster_time.as_datetime() if cluster_time is not None else dt.datetime.now(dt.timezone.utc))
    token = change.get("_id")
    position = (cluster_time.time << 32 | cluster_time.inc) if cluster_time is not None else None
    if operation == "update" and _only_reserved(change.get("updateDescription")):
        # Only ``_ddb`` changed (the sync noting a document's types): nothing DynamoDB holds.
        return None
    if operation in ("insert", "update", "replace"):
        document = change.get("fullDocument")
        if not document or "_id" not in document:
            # The document was deleted before its post-image was looked up: the delete event follows.
            key = (change.get("documentKey") or {}).get("_id")
            return Event(key, "gone", None, at, token, operation, position=position)
        return Event(document["_id"], "upsert", document, at, token, operation, change.get("fullDocumentBeforeChange"),
                     position)
    if operation == "delete":
        return Event(change["documentKey"]["_id"], "delete", None, at, token, operation, position=position)
    return None


def _only_reserved(description: dict[str, Any] | None) -> bool:
    if not description:
        return False
    paths = list(description.get("updatedFields") or {}) + list(description.get("removedFields") or [])
    paths += [t.get("field", "") for t in description.get("truncatedArrays") or []]
    return bool(paths) and all(p == RESERVED or p.startswith(f"{RESERVED}.") for p in paths)
