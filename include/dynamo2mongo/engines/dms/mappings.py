"""The task's table mappings and settings: what DMS replicates, and how.

Why table mode (``NestingLevel: one``) and not document mode. In document mode DMS hands the target a
single ``_doc`` column holding the whole document (plus ``_id`` with ``ExtractDocId``); the DynamoDB
target writes it as one string attribute, and the key attributes and the forward mark stay buried in a
LOB that neither an object mapping nor a source filter can address ("Don't apply filters to LOB
columns"). In table mode every top-level field becomes a column, so the key fields can be the item's
partition and sort key and scalar fields keep their type (string -> S; int, long, double -> N;
boolean -> BOOL). It is the only mode in which DMS can write an item of the table's shape at all, and
the only one that exposes ``_ddb.sync.src`` as a column to filter on. What table mode cannot do (AWS
DMS User Guide, "Using MongoDB as a source for AWS DMS" and "Using an Amazon DynamoDB database as a
target"):

- nested documents are flattened into columns named ``a.b.c``, which become attributes of that name,
  not maps; arrays (and so our sets, stored as arrays with a type hint) become JSON text (CLOB -> S);
- the columns are fixed from a sample of ``DocsToInvestigate`` documents when the task starts: a field
  that none of them carries is not replicated;
- BSON types outside DMS's MongoDB type table (Decimal128 among them) and Binary (a BLOB, while the
  DynamoDB target takes no LOB but CLOB) cannot be written; dates become strings; the reversible
  ``%`` encoding of attribute names is not decoded;
- the echo filter rests on DMS honouring a source filter on a flattened MongoDB column. The newest copy
  of the MongoDB source page we could read lists "Source filters are not supported for MongoDB" among
  its limitations, and "Using source filters" asks for immutable columns (the mark is not). A task
  that ignores the filter writes every forward-synced document back, and since table mode changes the
  item's shape, that write is a real change that forward sync then copies to MongoDB: check the filter
  on a staging table before choosing this engine.

The change-stream relay (``sync.backward: relay``) has none of these limits, and it adds what DMS
cannot: the echo ledger, the conflict policy and per-key ordering (DESIGN §6).
"""

from __future__ import annotations

from typing import Any

from dynamo2mongo.config import TableConfig
from dynamo2mongo.engines.dms.resources import DmsError
from dynamo2mongo.mapping import RESERVED
from dynamo2mongo.mapping.keys import key_fields

# The columns table mode makes of the reserved field (mapping.to_bson and sync.forward write exactly these).
# "Object ID and array type keys are converted to columns that are prefixed with oid and array in
# table mode": how the prefix combines with a flattened name is not documented, so both spellings of
# the hint array are excluded.
_RESERVED_COLUMNS = tuple(
    f"{RESERVED}.{name}" for name in ("t", "sync.src", "sync.h", "sync.seq", "sync.at")
) + (f"array_{RESERVED}.t",)
_MARK_COLUMN = f"{RESERVED}.sync.src"


def table_mappings(config: TableConfig, key_attrs: tuple[str, ...], key_types: dict[str, str]) -> dict[str, Any]:
    """The task's table mappings (selection with the mark filter, object mapping to the DynamoDB table).

    - Selection: the collection (``schema-name`` is the database), with a source filter that keeps only
      documents whose ``_ddb.sync.src`` column is NULL. "If more than one filter condition is used within
      a single filter, the list ... is combined as if using an OR", but a negative operator (``noteq``)
      must stand alone in its filter, and under DMS's SQLite comparison rules ``noteq`` is not true for
      NULL: it would drop every document the application creates. The import (baseline mark) and
      forward sync write only ``"dynamodb"`` there, so "is NULL" is "not marked": an application write
      reaches DynamoDB only if it removes ``_ddb.sync`` (a ``$set`` of other fields keeps it).
    - Object mapping, ``map-record-to-record``: every column becomes an attribute except those listed in
      ``exclude-columns`` (``_id`` and its flattened parts, the ``_ddb`` columns); ``partition-key-name``
      and ``sort-key-name`` name the key attributes. A string key also gets an explicit scalar ``string``
      attribute mapping from its column; DMS documents no numeric ``attribute-sub-type``, so a number
      key keeps the type of its own column (int/long/double -> N). Binary keys cannot be written at all.
    """
    if not key_attrs or len(key_attrs) > 2:
        raise DmsError(f"table {config.name!r}: expected a hash key and an optional range key, got {key_attrs!r}")
    columns = key_fields(key_attrs)
    for name in key_attrs:
        if key_types.get(name) == "B":
            raise DmsError(
                f"table {config.name!r}: key attribute {name!r} is binary; DMS reads MongoDB Binary as a BLOB and its "
                f"DynamoDB target takes no LOB but CLOB, so it cannot write these items: use sync.backward: relay"
            )
    locator = {"schema-name": config.database, "table-name": config.collection}
    exclude = ["_id", *(f"_id.{column}" for column in columns if len(columns) == 2), *_RESERVED_COLUMNS]
    parameters: dict[str, Any] = {"partition-key-name": key_attrs[0]}
    if len(key_attrs) == 2:
        parameters["sort-key-name"] = key_attrs[1]
    parameters["exclude-columns"] = exclude
    parameters["attribute-mappings"] = [
        {
            "target-attribute-name": name,
            "attribute-type": "scalar",
            "attribute-sub-type": "string",
            "value": "${" + column + "}",
        }
        for name, column in zip(key_attrs, columns)
        if key_types.get(name, "S") == "S"
    ]
    return {
        "rules": [
            {
                "rule-type": "selection",
                "rule-id": "1",
                "rule-name": "collection",
                "object-locator": locator,
                "rule-action": "include",
                "filters": [
                    {
                        "filter-type": "source",
                        "column-name": _MARK_COLUMN,
                        "filter-conditions": [{"filter-operator": "null"}],
                    }
                ],
            },
            {
                "rule-type": "object-mapping",
                "rule-id": "2",
                "rule-name": "item",
                "rule-action": "map-record-to-record",
                "object-locator": locator,
                "target-table-name": config.source_table,
                "mapping-parameters": parameters,
            },
        ]
    }


def task_settings() -> dict[str, Any]:
    """The ReplicationTaskSettings we decide (DMS fills in the rest)."""
    component = {"Severity": "LOGGER_SEVERITY_DEFAULT"}
    return {
        # The target is the application's live table: DMS must never drop or truncate it.
        "FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING"},
        # Limited LOB mode truncates JSON text (arrays) past LobMaxSize; full LOB mode does not.
        "TargetMetadata": {"SupportLobs": True, "FullLobMode": True, "LobChunkSize": 64, "BatchApplyEnabled": False},
        "Logging": {
            "EnableLogging": True,
            "LogComponents": [{"Id": c, **component} for c in ("SOURCE_CAPTURE", "TARGET_APPLY", "TASK_MANAGER")],
        },
        "ErrorBehavior": {
            # Stop rather than skip: a skipped change is a lost write, found only at verification.
            "DataErrorPolicy": "STOP_TASK",
            "DataTruncationErrorPolicy": "STOP_TASK",
            "TableErrorPolicy": "STOP_TASK",
            # The item usually exists already (it came from DynamoDB) or is gone: apply the change anyway.
            "ApplyErrorInsertPolicy": "UPDATE_RECORD",
            "ApplyErrorUpdatePolicy": "UPDATE_RECORD",
            "ApplyErrorDeletePolicy": "IGNORE_RECORD",
        },
    }
