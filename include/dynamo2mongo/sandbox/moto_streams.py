"""moto's DynamoDB Streams brought to what DynamoDB documents: a write that changes nothing in the
item (a PutItem of the same item, an UpdateItem that sets what is there or removes what is not)
writes no stream record. moto writes one for every write, which the sync would read as a change
DynamoDB never reports. Sandbox code only, installed by the sandbox's moto server.
"""

from __future__ import annotations

from typing import Any

from moto.dynamodb.models.table import StreamShard

_original_add = StreamShard.add


def _add(self: StreamShard, old: Any, new: Any) -> None:
    if old is None and new is None:
        return
    if old is not None and new is not None and old.to_json() == new.to_json():
        return
    _original_add(self, old, new)


def install() -> None:
    StreamShard.add = _add  # type: ignore[method-assign]
