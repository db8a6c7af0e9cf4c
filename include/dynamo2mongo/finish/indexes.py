"""Deferred indexes: the MongoDB indexes that mirror a DynamoDB table's keys and indexes (DESIGN §5).

The plan, from the facts of ``dynamo2mongo.prepare.table.describe_table``:

- ``d2m_pk``: a unique index on the primary key fields (hash[, range]). ``_id`` is derived from the
  same fields, so a document written with another ``_id`` convention fails loudly instead of
  becoming a silent duplicate. DynamoDB index names have at least 3 characters, so no secondary
  index can map to the same name.
- ``d2m_<index>``: one compound index per LSI and GSI on its key attributes, hash first.
- Sparse indexes: DynamoDB puts an item in a secondary index only when the item has every key
  attribute of that index. The table's own key attributes are in every item, so an index whose key
  attributes are all table key attributes (a GSI on ``(sk, pk)``, say) holds every item and becomes
  a plain index. Any other index (every LSI, and a GSI on other attributes) is sparse: its MongoDB
  index is partial, with ``{field: {$exists: true}}`` for each of its key fields that is not a table
  key field (a condition on a field every document has would filter nothing, and would only make
  queries harder to match against the filter). The MongoDB index then holds the same items.
- Equality-Sort-Range: ``indexes.esr_sort_fields`` may name a sort attribute for an index; its key
  becomes (hash = E, sort field = S, range = R). The sort field is not a DynamoDB key attribute,
  so it does not take part in the partial filter: items without it stay in the DynamoDB index.
- Two indexes with the same key and filter would be refused by MongoDB; the first one planned
  serves both (``serves`` names every DynamoDB index it stands for).

Field names are the stored (encoded) names of ``dynamo2mongo.mapping.names``: ``_id`` becomes ``%_id``.

``build_indexes`` creates the missing ones one at a time (the server builds without blocking
writes), skips equal ones and refuses conflicting ones; ``check_indexes`` compares the collection
with the plan.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, OperationFailure

from dynamo2mongo.finish import map_leaves
from dynamo2mongo.mapping.keys import key_fields
from dynamo2mongo.mapping.names import encode_name
from dynamo2mongo.prepare.table import TableDescription
from dynamo2mongo.errors import Permanent

log = logging.getLogger(__name__)

PREFIX = "d2m_"
PRIMARY = PREFIX + "pk"
# listIndexes fields that say nothing about what an index holds or enforces.
_IGNORED_OPTIONS = frozenset({"v", "key", "name", "ns", "background"})


class IndexPlanError(Permanent, ValueError):
    """The index configuration does not fit the table; the message says what to change."""


class IndexConflict(Permanent, RuntimeError):
    """An existing index stands in the way of a planned one; the message names both."""


class IndexBuildFailed(Permanent, RuntimeError):
    """The server refused to build a planned index; the message says why and what to fix."""


@dataclass(frozen=True)
class PlannedIndex:
    name: str
    key: tuple[tuple[str, int], ...]
    unique: bool = False
    # Key fields a document must have to be in the index (partial index); empty: every document.
    sparse_fields: tuple[str, ...] = ()
    serves: tuple[str, ...] = ()

    def options(self) -> dict[str, Any]:
        """The options of ``create_index`` besides the name, as listIndexes reports them."""
        options: dict[str, Any] = {}
        if self.unique:
            options["unique"] = True
        if self.sparse_fields:
            options["partialFilterExpression"] = {f: {"$exists": True} for f in self.sparse_fields}
        return options

    def spec(self) -> dict[str, Any]:
        """JSON-safe description, for logs, XCom and the migration state."""
        return {
            "name": self.name,
            "key": [[field_name, direction] for field_name, direction in self.key],
            "unique": self.unique,
            "partialFilterExpression": self.options().get("partialFilterExpression"),
        }

    def describe(self) -> str:
        text = f"{self.name} ({', '.join(f for f, _ in self.key)})"
        if self.unique:
            text += " unique"
        if self.sparse_fields:
            text += f", partial: only documents with {', '.join(self.sparse_fields)}"
        return text + f"; for {', '.join(self.serves)}"


def plan_indexes(table: TableDescription, esr_sort_fields: Mapping[str, str] | None = None) -> list[PlannedIndex]:
    """The indexes that mirror ``table`` in MongoDB: the primary key first, then LSIs and GSIs."""
    esr = dict(esr_sort_fields or {})
    known = {index.name for index in table.indexes}
    unknown = sorted(set(esr) - known)
    if unknown:
        raise IndexPlanError(
            f"table {table.name!r}: indexes.esr_sort_fields names index {unknown[0]!r}, which the table does not "
            f"have (its indexes: {', '.join(sorted(known)) or 'none'}); fix the table configuration"
        )
    table_fields = key_fields(table.key_attrs)
    plan = [PlannedIndex(PRIMARY, tuple((f, 1) for f in table_fields), unique=True, serves=("primary key",))]
    for index in table.indexes:
        fields = key_fields(index.key_attrs)
        key = list(fields)
        sort = esr.get(index.name)
        if sort is not None:
            sort_field = encode_name(sort, True)
            if sort_field == fields[0]:
                raise IndexPlanError(
                    f"table {table.name!r}: indexes.esr_sort_fields gives {index.kind} {index.name!r} the sort field "
                    f"{sort!r}, which is already its hash key; name another attribute or remove the entry"
                )
            if sort_field not in fields:
                key.insert(1, sort_field)
        candidate = PlannedIndex(
            PREFIX + index.name,
            tuple((f, 1) for f in key),
            sparse_fields=tuple(f for f in fields if f not in table_fields),
            serves=(f"{index.kind} {index.name}",),
        )
        twin = next(
            (i for i, p in enumerate(plan) if p.key == candidate.key and p.sparse_fields == candidate.sparse_fields),
            None,
        )
        if twin is None:
            plan.append(candidate)
        else:
            plan[twin] = dataclasses.replace(plan[twin], serves=plan[twin].serves + candidate.serves)
    return plan


# ---- the indexes that exist ---------------------------------------------------------------------


def _plain(value: Any) -> Any:
    # listIndexes may give a direction or an option as a double (1.0) where the plan has an int (1).
    return map_leaves(value, lambda leaf: int(leaf) if isinstance(leaf, float) and leaf.is_integer() else leaf)


@dataclass(frozen=True)
class _Existing:
    name: str
    key: tuple[tuple[str, Any], ...]
    options: dict[str, Any]

    @classmethod
    def read(cls, document: Mapping[str, Any]) -> "_Existing":
        options = {k: _plain(v) for k, v in document.items() if k not in _IGNORED_OPTIONS}
        # A false flag is the same index as an absent one.
        for flag in ("unique", "sparse"):
            if options.get(flag) is False:
                del options[flag]
        key = tuple((field_name, _plain(direction)) for field_name, direction in document["key"].items())
        return cls(document["name"], key, options)

    def shown(self) -> str:
        return json.dumps({"name": self.name, "key": [list(k) for k in self.key], **self.options}, default=str)


def _shown(planned: PlannedIndex) -> str:
    return json.dumps({"name": planned.name, "key": [list(k) for k in planned.key], **planned.options()})


def _existing(collection: Collection) -> dict[str, _Existing]:
    return {d["name"]: _Existing.read(d) for d in collection.list_indexes()}


def _matches(existing: _Existing, planned: PlannedIndex) -> bool:
    return existing.key == planned.key and existing.options == planned.options()


def _where(collection: Collection) -> str:
    return f"collection {collection.full_name!r}"


def _drop_hint(collection: Collection, name: str) -> str:
    return f"db.getSiblingDB({collection.database.name!r}).getCollection({collection.name!r}).dropIndex({name!r})"


def _equivalent(collection: Collection, planned: PlannedIndex, existing: dict[str, _Existing]) -> _Existing | None:
    """The existing index that stands for ``planned``; raises when one stands in its way."""
    found = existing.get(planned.name)
    if found is not None:
        if _matches(found, planned):
            return found
        raise IndexConflict(
            f"{_where(collection)} already has an index named {planned.name!r} that differs from the plan: "
            f"existing {found.shown()}, planned {_shown(planned)}. It is left from an earlier plan (the table's "
            f"indexes or indexes.esr_sort_fields changed since): drop it ({_drop_hint(collection, planned.name)}) "
            f"and clear this task to build the planned one"
        )
    same_key = [e for e in existing.values() if e.key == planned.key]
    equal = next((e for e in same_key if e.options == planned.options()), None)
    if equal is None and same_key:
        other = same_key[0]
        raise IndexConflict(
            f"{_where(collection)} has index {other.name!r} on the key planned for {planned.name!r} but with "
            f"other options: existing {other.shown()}, planned {_shown(planned)}. Drop {other.name!r} "
            f"({_drop_hint(collection, other.name)}) and clear this task, or drop nothing and leave this "
            f"task failed if the application relies on {other.name!r} as it is"
        )
    return equal


# ---- building and checking ----------------------------------------------------------------------


def index_build_progress(collection: Collection, name: str) -> str | None:
    """The server's progress line for a running build of index ``name`` (``$currentOp``), or None.

    Raises OperationFailure when the server cannot tell: mongo-java-server has no ``$currentOp``, and
    on Atlas it needs a role with the ``inprog`` privilege.
    """
    operations = collection.database.client.admin.aggregate(
        [
            {"$currentOp": {"allUsers": True}},
            {"$match": {"ns": collection.full_name, "progress": {"$exists": True}}},
        ]
    )
    for operation in operations:
        indexes = (operation.get("command") or {}).get("indexes") or []
        if not indexes or any(i.get("name") == name for i in indexes):
            done, total = operation["progress"].get("done", 0), operation["progress"].get("total", 0)
            return f"{operation.get('msg') or 'building'} ({done:,}/{total:,})"
    return None


def _create(collection: Collection, planned: PlannedIndex, progress_every: float) -> float:
    """Create one index; while the server builds, log its progress at a steady cadence."""
    started = time.monotonic()
    ask_server = True
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="index-build") as pool:
        future = pool.submit(collection.create_index, list(planned.key), name=planned.name, **planned.options())
        while True:
            try:
                future.result(timeout=progress_every)
                return time.monotonic() - started
            except concurrent.futures.TimeoutError:
                line = None
                if ask_server:
                    try:
                        line = index_build_progress(collection, planned.name)
                    except OperationFailure:
                        # Progress is a courtesy: a server that cannot report it builds all the same.
                        ask_server = False
                log.info(
                    "building %s on %s: %s, %.0fs so far",
                    planned.name,
                    collection.full_name,
                    line or "the server does not report progress",
                    time.monotonic() - started,
                )
            except DuplicateKeyError as error:
                raise IndexBuildFailed(
                    f"unique index {planned.name!r} on {', '.join(f for f, _ in planned.key)} of {_where(collection)} "
                    f"cannot be built, several documents share one key: {_server_message(error)}. Each item must be "
                    f"one document whose _id follows dynamo2mongo.mapping.keys.document_id and that holds every key field; "
                    f"find the twins by grouping on the key fields, remove the wrong ones, then clear this task"
                ) from error
            except OperationFailure as error:
                raise IndexBuildFailed(
                    f"the server refused to build index {planned.describe()} on {_where(collection)}: "
                    f"{_server_message(error)}. Fix the cause the server names, then clear this task"
                ) from error


def _server_message(error: OperationFailure) -> str:
    return str((error.details or {}).get("errmsg") or error)


def build_indexes(
    collection: Collection, plan: list[PlannedIndex], *, progress_every: float = 10.0
) -> list[dict[str, Any]]:
    """Create the planned indexes that are missing, one at a time; idempotent.

    An existing index equal to a planned one (same name, or same key and options under another
    name) is kept. Any other index in the way raises IndexConflict before anything is built.
    Returns one outcome per planned index: ``created``, ``exists`` or ``served by <name>``.
    """
    existing = _existing(collection)
    standing = {planned.name: _equivalent(collection, planned, existing) for planned in plan}
    outcomes = []
    for position, planned in enumerate(plan, start=1):
        found = standing[planned.name]
        if found is not None:
            outcome = "exists" if found.name == planned.name else f"served by {found.name}"
            log.info("[%d/%d] %s: %s", position, len(plan), planned.describe(), outcome)
            outcomes.append({"name": planned.name, "outcome": outcome, "seconds": 0.0})
            continue
        log.info("[%d/%d] building %s on %s", position, len(plan), planned.describe(), collection.full_name)
        seconds = _create(collection, planned, progress_every)
        log.info("[%d/%d] built %s in %.1fs", position, len(plan), planned.name, seconds)
        outcomes.append({"name": planned.name, "outcome": "created", "seconds": round(seconds, 1)})
    return outcomes


def check_indexes(collection: Collection, plan: list[PlannedIndex]) -> list[str]:
    """Differences between the collection's indexes and the plan; empty when all match.

    Indexes of the application are none of our business, but a ``d2m_`` index the plan does not
    hold is left from an earlier plan (a GSI deleted since, a changed ESR field) and is reported.
    """
    existing = _existing(collection)
    differences = []
    for planned in plan:
        found = existing.get(planned.name)
        if found is None:
            twin = next((e for e in existing.values() if _matches(e, planned)), None)
            if twin is None:
                differences.append(f"index {planned.name!r} is missing: planned {_shown(planned)}")
        elif not _matches(found, planned):
            differences.append(f"index {planned.name!r} differs: existing {found.shown()}, planned {_shown(planned)}")
    planned_names = {p.name for p in plan}
    for name in sorted(existing):
        if name.startswith(PREFIX) and name not in planned_names:
            differences.append(
                f"index {name!r} is not in the plan (left from an earlier plan?): drop it with "
                f"{_drop_hint(collection, name)}"
            )
    return differences
