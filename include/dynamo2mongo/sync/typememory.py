"""DynamoDB types for documents written by applications that do not know ``_ddb`` (DESIGN §6).

A document rewritten without ``_ddb`` (an ODM's ``replace_one``) has lost the hints that say a list
is a string set or a string is a 37-digit number, and a ``$set`` of a new field adds none. Two
memories give them back, where the value still fits the hint:

- per key (``restore``): the hints of the version both stores last agreed on (dynamo2mongo.sync.keystate),
  or of the document before the change (its pre-image), for a document without ``_ddb``;
- per table (``TableTypes``): for each attribute path (list positions folded into ``*``), the kinds
  the sync has seen there, in ``sync_types`` of the metadata database. A path that has only ever
  held one hinted kind gives that hint to a fitting value that has none; a path seen with a set and
  with a plain list (or a 37-digit number and a plain string) is undecided and gives nothing.
  Plain kinds are learnt for top-level attributes only, so a nested path is taken as decided by
  its hints alone.

A hint whose value no longer fits is not guessed: it is reported as undecided, and the value goes
to DynamoDB as its plain type.
"""

from __future__ import annotations

import decimal
import time
from typing import Any

from bson import Binary, Decimal128, Int64

from dynamo2mongo.mapping import RESERVED

_NUMBERS = (int, Int64, float, Decimal128)


def _at(document: Any, path: list) -> Any:
    value = document
    for part in path:
        if isinstance(part, int) and isinstance(value, list) and 0 <= part < len(value):
            value = value[part]
        elif isinstance(part, str) and isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return _MISSING
    return value


_MISSING = object()


def _is_number_text(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return decimal.Decimal(value).is_finite()
    except decimal.InvalidOperation:
        return False


def _fits(value: Any, hint: str) -> bool:
    if hint == "N":
        return _is_number_text(value)
    if not isinstance(value, list) or not value:
        return False
    if hint == "SS":
        return all(isinstance(v, str) for v in value) and len(set(value)) == len(value)
    if hint == "NS":
        if not all((isinstance(v, _NUMBERS) and not isinstance(v, bool)) or _is_number_text(v) for v in value):
            return False
        numbers = [decimal.Decimal(str(v.to_decimal() if isinstance(v, Decimal128) else v)) for v in value]
        return len(set(numbers)) == len(numbers)
    if hint == "BS":
        return all(isinstance(v, (bytes, Binary)) for v in value) and len({bytes(v) for v in value}) == len(value)
    return False


def restore(document: dict[str, Any], remembered: list | None, table: "TableTypes | None" = None,
            held: list | None = None) -> tuple[dict[str, Any], list[list]]:
    """The document with the remembered hints that still fit; and the paths whose hint did not.

    A document with ``_ddb`` keeps its own hints; only the hints of the item DynamoDB holds now for
    the key (``held``) and the table's memory add to them, for values at paths they do not name.
    """
    own = (document.get(RESERVED) or {}).get("t") or []
    kept, undecided = list(own), []
    if RESERVED not in document:
        for hint in remembered or ():
            value = _at(document, hint["p"])
            if value is _MISSING:
                continue
            (kept if _fits(value, hint["t"]) else undecided).append(hint)
    named = {tuple(h["p"]) for h in kept} | {tuple(h["p"]) for h in undecided}
    for hint in held or ():
        value = _at(document, hint["p"])
        if tuple(hint["p"]) not in named and value is not _MISSING and _fits(value, hint["t"]):
            kept.append(hint)
            named.add(tuple(hint["p"]))
    if table is not None:
        kept += [h for h in table.hints(document) if tuple(h["p"]) not in named]
    if kept == own:
        return document, [h["p"] for h in undecided]
    reserved = {**(document.get(RESERVED) or {}), "t": kept}
    return {**document, RESERVED: reserved}, [h["p"] for h in undecided]


TYPES = "sync_types"
_RECHECK_SECONDS = 0.2
_PLAIN = {list: "L", str: "S"}


def _pattern(path: list) -> tuple:
    return tuple("*" if isinstance(part, int) else part for part in path)


def _values(document: Any, pattern: tuple, path: tuple = ()) -> list[tuple[list, Any]]:
    """Every ``(path, value)`` of the document that the pattern names."""
    if not pattern:
        return [(list(path), document)]
    head, rest = pattern[0], pattern[1:]
    if head == "*":
        if not isinstance(document, list):
            return []
        return [found for index, item in enumerate(document) for found in _values(item, rest, path + (index,))]
    if not isinstance(document, dict) or head not in document:
        return []
    return _values(document[head], rest, path + (head,))


def observations(document: dict[str, Any], plain: bool = True) -> set[tuple[tuple, str]]:
    """What a document says of its table's types: each hinted path's hint, and (``plain``) the plain
    kind of each top-level list or string without one."""
    hints = (document.get(RESERVED) or {}).get("t") or []
    seen = {(_pattern(h["p"]), h["t"]) for h in hints}
    hinted = {_pattern(h["p"]) for h in hints}
    for name, value in document.items() if plain else ():
        kind = _PLAIN.get(type(value))
        if kind and name not in ("_id", RESERVED) and (name,) not in hinted:
            seen.add(((name,), kind))
    return seen


class TableTypes:
    """The kinds each attribute path of one table has held, learnt by both sync directions."""

    def __init__(self, database: Any, table: str, refresh_seconds: float = 1.0):
        self.collection = database[TYPES]
        self.table = table
        self.refresh_seconds = refresh_seconds
        self._kinds: dict[tuple, set[str]] | None = None
        self._loaded = 0.0

    def _load(self) -> dict[tuple, set[str]]:
        # The other direction (another process) learns too: read again now and then.
        if self._kinds is None or time.monotonic() - self._loaded > self.refresh_seconds:
            self._loaded = time.monotonic()
            self._kinds = {tuple(d["_id"]["p"]): set(d.get("kinds") or ())
                           for d in self.collection.find({"_id.t": self.table})}
        return self._kinds

    def learn(self, documents: list[dict[str, Any]], plain: bool = True) -> None:
        """``plain``: the documents come from DynamoDB, so a list without a hint there is a real list.
        (A MongoDB application's plain list may be a set whose hint it does not know.)"""
        kinds = self._load()
        new: dict[tuple, set[str]] = {}
        for document in documents:
            for pattern, kind in observations(document, plain):
                if kind not in kinds.get(pattern, ()):
                    new.setdefault(pattern, set()).add(kind)
        for pattern, added in new.items():
            self.collection.update_one({"_id": {"t": self.table, "p": list(pattern)}},
                                       {"$addToSet": {"kinds": {"$each": sorted(added)}}}, upsert=True)
            kinds.setdefault(pattern, set()).update(added)

    def hints(self, document: dict[str, Any]) -> list[dict[str, Any]]:
        """Hints for the document's values at paths that only ever held one hinted kind."""
        kinds_by_path = self._load()
        unknown = [n for n, v in document.items() if type(v) in _PLAIN and (n,) not in kinds_by_path]
        if unknown and time.monotonic() - self._loaded > _RECHECK_SECONDS:
            # An attribute this process has not seen: the other direction may have just learnt it.
            self._kinds = None
            kinds_by_path = self._load()
        found = []
        for pattern, kinds in kinds_by_path.items():
            if len(kinds) != 1 or next(iter(kinds)) in _PLAIN.values():
                continue
            (kind,) = kinds
            found += [{"p": path, "t": kind} for path, value in _values(document, pattern) if _fits(value, kind)]
        return found
