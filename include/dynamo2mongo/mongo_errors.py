"""What MongoDB's write errors mean for a migration, on MongoDB and on mongo-java-server alike."""

from __future__ import annotations

import re
from typing import Any

from bson import json_util

DUPLICATE_KEY = 11000
# The index and key in a duplicate-key message, for servers that send no keyPattern/keyValue
# (mongo-java-server, older MongoDB): "... index: email_1 dup key: { email: "x" }", or in the oldest
# spelling "... index: db.coll.$email_1  dup key: { : "x" }".
_DUPLICATE_KEY_MESSAGE = re.compile(r"index: (?:.*?\.\$)?(.+?)\s+dup key: (.*)", re.DOTALL)


def other_unique_index(error: dict[str, Any]) -> tuple[str, str] | None:
    """(index, key) of a duplicate-key error raised by a unique index other than ``_id``'s, else None.

    Only an ``_id`` collision means the document is already there (maybe newer, from forward sync);
    another unique index turning a document away is a conflict between two records' values. A server
    that names neither the key pattern nor the index gets the conflict: counting an unknown
    collision as 'kept' would drop a record without a word.
    """
    pattern = error.get("keyPattern")
    match = _DUPLICATE_KEY_MESSAGE.search(error.get("errmsg") or "")
    if isinstance(pattern, dict):
        if list(pattern) == ["_id"]:
            return None
    elif match is not None and match[1] == "_id_":
        return None
    if match is not None:
        index = match[1]
    else:
        index = json_util.dumps(pattern) if pattern is not None else "(the server did not name it)"
    if "keyValue" in error:
        key = json_util.dumps(error["keyValue"])
    else:
        key = match[2].strip() if match is not None else "(the server did not give it)"
    return index, key
