"""What the MongoDB server behind a client can do, where the answer changes how we write."""

from __future__ import annotations

from pymongo.database import Database
from pymongo.errors import OperationFailure

_COMMAND_NOT_FOUND = 59


def plans_compound_filters(database: Database) -> bool:
    """Whether a filter on ``_id`` plus other fields is served by the ``_id`` index.

    Every MongoDB server plans queries (and so answers ``explain``). mongo-java-server, the sandbox's
    wire server, has no planner: it scans the whole collection for any filter other than exactly
    ``{_id: v}``, which turns guarded writes quadratic. Without a planner we decide the guard on
    values read just before the write instead of inside the write's filter.
    """
    try:
        database.command({"explain": {"find": "_dynamo2mongo_probe", "filter": {"_id": 0, "x": 0}}})
    except OperationFailure as error:
        if error.code == _COMMAND_NOT_FOUND:
            return False
        raise
    return True
