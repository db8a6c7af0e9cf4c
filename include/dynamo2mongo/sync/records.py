"""Stream records as forward sync sees them: converted to changes, with the mark a written document carries.

Sequence numbers are decimal strings of up to 40 digits, ordered per item key across a stream's
shards (a child shard's records follow its parent's); they are stored zero-padded to 40 characters
so that MongoDB's string order is their numeric order.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import bson

from dynamo2mongo.errors import Permanent
from dynamo2mongo.fullload.export import MalformedRecord
from dynamo2mongo.fullload.export.ddbjson import item_from_json
from dynamo2mongo.mapping import RESERVED, Unrepresentable, document_to_item, item_to_document
from dynamo2mongo.mapping.canonical import content_hash
from dynamo2mongo.sync.echo import TOMBSTONE
from dynamo2mongo.sync.typememory import restore

SOURCE = "dynamodb"
SEQ_WIDTH = 40
EVENTS = ("INSERT", "MODIFY", "REMOVE")
TTL_PRINCIPAL = "dynamodb.amazonaws.com"
UNKNOWN = "?"


class ForwardApplyError(Permanent, RuntimeError):
    """A stream record cannot be applied; the message names the table, the key and the sequence number."""


@dataclass(frozen=True)
class Change:
    """One stream record, converted: the key's ``_id`` and the document to write (None: delete)."""

    id: Any
    seq: str
    created: dt.datetime
    event: str
    document: dict[str, Any] | None
    hash: str = TOMBSTONE
    keys: dict[str, Any] | None = None
    ttl: bool = False
    record: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def identity(self) -> bytes:
        """Equal for equal ``_id`` values (a dict ``_id`` is not hashable)."""
        return bson.encode({"k": self.id})

    @property
    def hints(self) -> list | None:
        return ((self.document or {}).get(RESERVED) or {}).get("t")


def padded(sequence_number: str | int) -> str:
    text = str(sequence_number)
    if not text.isdigit() or len(text) > SEQ_WIDTH:
        raise ValueError(f"{text!r} is not a DynamoDB stream sequence number")
    return text.zfill(SEQ_WIDTH)


def _created(value: Any) -> dt.datetime:
    # boto3 gives a datetime; Lambda events carry epoch seconds.
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    return dt.datetime.now(dt.timezone.utc)


def forward_mark(item: dict[str, Any], seq: str, created: dt.datetime) -> dict[str, Any]:
    return {"src": SOURCE, "h": content_hash(item), "seq": seq, "at": created}


def synced_document(item: dict[str, Any], key_attrs: tuple[str, ...], seq: str, created: dt.datetime,
                    number_mapping: str = "lossless") -> dict[str, Any]:
    """The document forward sync writes for a DynamoDB item: converted, with the forward mark."""
    document = item_to_document(item, key_attrs, number_mapping)
    document.setdefault(RESERVED, {})["sync"] = forward_mark(item, seq, created)
    return document


def baseline_mark(item: dict[str, Any]) -> dict[str, Any]:
    """The mark of an exported item: its content as DynamoDB held it, older than any stream record.

    With it, an imported document that the application later changes is told apart from one that
    still mirrors DynamoDB, which conflict detection and echo suppression rely on.
    """
    return {"src": SOURCE, "h": content_hash(item), "seq": ""}


def to_change(
    record: dict[str, Any],
    key_attrs: tuple[str, ...],
    number_mapping: str = "lossless",
    binary_as_base64: bool = False,
) -> Change:
    """Convert one stream record (boto3 shape, or Lambda's JSON shape with ``binary_as_base64``)."""
    data = record.get("dynamodb") or {}
    event = record.get("eventName")
    try:
        seq = padded(data["SequenceNumber"])
        if event not in EVENTS:
            raise MalformedRecord(f"unknown eventName {event!r}")
        keys = item_from_json(data["Keys"], "Keys") if binary_as_base64 else data["Keys"]
        document_id = item_to_document(keys, key_attrs)["_id"]
        created = _created(data.get("ApproximateCreationDateTime"))
        if event == "REMOVE":
            return Change(document_id, seq, created, event, None, TOMBSTONE, keys, is_expiry(record), record)
        if "NewImage" not in data:
            raise MalformedRecord(
                "the record has no NewImage: the stream's view type must be NEW_AND_OLD_IMAGES (or NEW_IMAGE)"
            )
        item = item_from_json(data["NewImage"], "NewImage") if binary_as_base64 else data["NewImage"]
        document = synced_document(item, key_attrs, seq, created, number_mapping)
    except (KeyError, ValueError) as error:
        reason = getattr(error, "reason", None) or (f"missing field {error}" if isinstance(error, KeyError) else str(error))
        raise ForwardApplyError(
            f"stream record {record.get('eventID')!r} (sequence number {data.get('SequenceNumber')}, keys "
            f"{data.get('Keys')!r:.200}) cannot be converted: {reason}"
        ) from error
    return Change(document["_id"], seq, created, event, document, document[RESERVED]["sync"]["h"], keys, record=record)


def is_expiry(record: dict[str, Any]) -> bool:
    """A REMOVE made by DynamoDB's TTL: the stream names the service as the writer."""
    writer = record.get("userIdentity") or {}
    return writer.get("type") == "Service" and writer.get("principalId") == TTL_PRINCIPAL


def document_hash(document: dict[str, Any] | None, remembered: list | None = None) -> str:
    """The content hash of what a MongoDB document maps to in DynamoDB (a tombstone for none), with
    the key's remembered types for a document written without ``_ddb`` (dynamo2mongo.sync.typememory).

    A document DynamoDB cannot hold hashes to ``UNKNOWN``, equal to no synced version.
    """
    if document is None:
        return TOMBSTONE
    try:
        return content_hash(document_to_item(restore(document, remembered)[0]))
    except Unrepresentable:
        return UNKNOWN


def mark_of(document: dict[str, Any] | None) -> dict[str, Any]:
    return ((document or {}).get(RESERVED) or {}).get("sync") or {}
