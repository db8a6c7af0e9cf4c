"""The JSON schema of ``tables.yaml``, generated from the models, for editors to check and complete the file.

``config/tables.schema.json`` is this module's output (``python -m dynamo2mongo.config.schema``); a test
keeps the two equal.
"""

from __future__ import annotations

import copy
import json
import sys
from typing import Any

from pydantic import TypeAdapter

from dynamo2mongo.config.document import Configuration


def _table_tree(defs: dict[str, Any]) -> set[str]:
    """The definitions a table entry is made of (TableConfig and its sections)."""
    names, todo = set(), ["TableConfig"]
    while todo:
        name = todo.pop()
        if name in names:
            continue
        names.add(name)
        todo += [ref.rsplit("/", 1)[1] for ref in _refs(defs[name])]
    return names


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if "$ref" in node else []) + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def document_schema() -> dict[str, Any]:
    schema = TypeAdapter(Configuration).json_schema()
    defs = schema["$defs"]
    # A table entry may leave any key to `defaults` (merged under it key by key), so only the merged
    # table must be complete; the file's entries and `defaults` need no key but the table's own name.
    for name in _table_tree(defs):
        defs[name].pop("required", None)
    defs["TableEntry"] = {**copy.deepcopy(defs["TableConfig"]), "required": ["name"], "title": "Table"}
    schema["properties"]["tables"]["items"] = {"$ref": "#/$defs/TableEntry"}
    # The file's short forms of a wave: one table name, or a list of names.
    plan = defs["PlanConfig"]
    plan["required"] = ["waves"]
    plan["properties"]["waves"]["items"] = {"anyOf": [
        {"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}, {"$ref": "#/$defs/Wave"}]}
    schema["properties"] = {
        "defaults": {"$ref": "#/$defs/TableConfig",
                     "description": "Merged under every table (nested sections key by key)."},
        **schema["properties"],
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "dynamo2mongo tables.yaml",
        "description": "Tables to migrate, one DAG each (dynamo2mongo__<name>); the keys are documented in README.md.",
        **schema,
    }


def render() -> str:
    return json.dumps(document_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
