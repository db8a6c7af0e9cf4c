"""The reserved field ``_ddb`` and the type hints in it (DESIGN §4).

``_ddb`` holds what a MongoDB document needs to come back as the same DynamoDB item, and sync
metadata; it is never written to DynamoDB. Type hints live in ``_ddb.t`` as
``[{"p": [path...], "t": hint}]``: the path holds stored field names and list indices, the hint
is ``N`` (a number kept as a string) or a set type (``SS``, ``NS``, ``BS``, kept as an array).
"""

from __future__ import annotations

from typing import Any

from dynamo2mongo.mapping.unrepresentable import Unrepresentable

RESERVED = "_ddb"
SET_HINTS = frozenset({"SS", "NS", "BS"})


def hint_tree(document: dict[str, Any]) -> dict | None:
    """``_ddb.t`` as a tree of path parts; the hint of a path sits under the key None."""
    meta = document.get(RESERVED)
    hints = meta.get("t") if isinstance(meta, dict) else None
    if not hints:
        return None
    if not isinstance(hints, list):
        raise Unrepresentable(f"_ddb.t must be a list of type hints, got {type(hints).__name__}; restore it from the "
                              f"last synced version or remove _ddb.t", (RESERVED, "t"))
    tree: dict = {}
    for index, hint in enumerate(hints):
        try:
            parts, kind = hint["p"], hint["t"]
            node = tree
            for part in parts:
                node = node.setdefault(part, {})
        except (KeyError, TypeError, AttributeError):
            raise Unrepresentable(f"type hint {hint!r:.80} is malformed (a hint is {{p: [path...], t: N|SS|NS|BS}}); "
                                  f"restore it from the last synced version or remove it", (RESERVED, "t", index)) from None
        if not isinstance(parts, list) or not isinstance(kind, str):
            raise Unrepresentable(f"type hint {hint!r:.80} is malformed (a hint is {{p: [path...], t: N|SS|NS|BS}}); "
                                  f"restore it from the last synced version or remove it", (RESERVED, "t", index))
        node[None] = kind
    return tree
