"""Enabling the table's stream before the export, so no change after the export time is missed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from dynamo2mongo.errors import Permanent

REQUIRED_VIEW = "NEW_AND_OLD_IMAGES"


def view_problem(table_name: str, view: str | None) -> str | None:
    """What is wrong with the table's enabled stream of this view type (None: nothing), as preflight
    reports it and enabling refuses it."""
    if view == REQUIRED_VIEW:
        return None
    return (
        f"table {table_name!r} already has a stream with view type {view}; the migration needs "
        f"{REQUIRED_VIEW} (old and new images). Disable that stream or change its view type "
        f"(its consumers will lose their position), then retry."
    )


class StreamError(Permanent, RuntimeError):
    """The table's stream is in a state the migration cannot use; the message says what to do."""


@dataclass(frozen=True)
class StreamResult:
    stream_arn: str
    enabled_by_us: bool


def ensure_stream(dynamodb: Any, table_name: str) -> StreamResult:
    """Enable a NEW_AND_OLD_IMAGES stream, or accept the one already there.

    Idempotent: a second call finds the stream it enabled. An existing stream with another view
    type is an error, because switching it would drop the records other consumers rely on.
    """
    table = dynamodb.describe_table(TableName=table_name)["Table"]
    spec = table.get("StreamSpecification") or {}
    if spec.get("StreamEnabled"):
        problem = view_problem(table_name, spec.get("StreamViewType"))
        if problem:
            raise StreamError(problem)
        return StreamResult(stream_arn=table["LatestStreamArn"], enabled_by_us=False)
    try:
        response = dynamodb.update_table(
            TableName=table_name,
            StreamSpecification={"StreamEnabled": True, "StreamViewType": REQUIRED_VIEW},
        )
    except ClientError as error:
        raise StreamError(
            f"table {table_name!r}: enabling the stream failed ({error.response['Error']['Code']}: "
            f"{error.response['Error'].get('Message', '')}). Check dynamodb:UpdateTable permission and "
            f"that the table is ACTIVE, then retry."
        ) from error
    description = response["TableDescription"]
    return StreamResult(stream_arn=description["LatestStreamArn"], enabled_by_us=True)


def stream_status(streams: Any, stream_arn: str) -> str:
    """StreamStatus (ENABLING, ENABLED, DISABLING, DISABLED) from DynamoDB Streams."""
    return streams.describe_stream(StreamArn=stream_arn, Limit=1)["StreamDescription"]["StreamStatus"]
