"""Configuration errors in the file's words: which file, which table, which key, and what is allowed.

pydantic reports a location and an error type; ``explain`` turns the first (most fundamental) of them
into one sentence, reading the allowed keys, choices and bounds off the models themselves, so a new
setting gets its messages without a line here.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any

import annotated_types
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from dynamo2mongo.errors import Permanent


class ConfigError(Permanent, ValueError):
    """The table configuration is invalid; the message says where and what to fix."""


@dataclasses.dataclass(frozen=True)
class Says:
    """What a value must be, in words, where its type and bounds alone would read wrong."""

    text: str


@dataclasses.dataclass(frozen=True)
class Items:
    """How errors name one item of a list: ``label`` formatted with its ``number`` (from 1) and ``name``."""

    label: str


_TYPE_NAMES = {"int_type": "int", "bool_type": "bool", "string_type": "str", "float_type": "float"}
_BOUNDS = {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}
_MAPPING = {"dataclass_type", "dict_type", "model_type", "dataclass_exact_type"}
_UNKNOWN = {"unexpected_keyword_argument", "extra_forbidden"}


def _unwrap(annotation: Any) -> Any:
    """The type under Optional and Annotated: ``Annotated[X, ...] | None`` is X."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            annotation = members[0]
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = annotation.__origin__
    return annotation


@functools.cache
def fields_of(cls: Any) -> dict[str, FieldInfo]:
    """A configuration dataclass's fields with what their annotations declare (bounds, markers, text)."""
    if not dataclasses.is_dataclass(cls):
        return {}
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: FieldInfo.from_annotation(hints[f.name]) for f in dataclasses.fields(cls) if f.init}


@dataclasses.dataclass
class _Spot:
    """Where an error is: the places that name it (file, table, wave) and the dotted key below them."""

    places: list[str]
    key: list[str]
    type: Any = None
    field: Any = None
    at_root: bool = True

    def where(self) -> str:
        return ": ".join(self.places)

    def dotted(self) -> str:
        return ".".join(self.key)


def _locate(root: type, loc: tuple[Any, ...], where: str, raw: Any) -> _Spot:
    spot = _Spot([where], [], root)
    items: Items | None = None
    node = raw
    for part in loc:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            args = typing.get_args(_unwrap(spot.type))
            if items is not None:
                name = node.get("name", f"#{part + 1}") if isinstance(node, Mapping) else f"#{part + 1}"
                spot.places.append(items.label.format(number=part + 1, name=name))
                spot.key, spot.at_root = [], False
            elif spot.key:
                spot.key[-1] += f"[{part}]"
            spot.type, spot.field, items = (_unwrap(args[0]) if args else None), None, None
            continue
        node = node.get(part) if isinstance(node, Mapping) else None
        field = fields_of(spot.type).get(part)
        spot.key.append(str(part))
        spot.field = field
        spot.type = _unwrap(field.annotation) if field is not None else None
        items = next((m for m in field.metadata if isinstance(m, Items)), None) if field is not None else None
    return spot


def _bounds(field: Any) -> tuple[Any, Any]:
    low = high = None
    for meta in field.metadata if field is not None else ():
        if isinstance(meta, (annotated_types.Ge, annotated_types.Gt)):
            low = getattr(meta, "ge", getattr(meta, "gt", None))
        if isinstance(meta, (annotated_types.Le, annotated_types.Lt)):
            high = getattr(meta, "le", getattr(meta, "lt", None))
    return low, high


def _container(root: type, loc: tuple[Any, ...], where: str, raw: Any) -> tuple[str, Any]:
    """How an unknown or missing key's mapping is named, and its type (for the allowed keys)."""
    spot = _locate(root, loc, where, raw)
    if not spot.key:
        return spot.where(), spot.type
    if spot.at_root:
        return f"{spot.where()}: {spot.dotted()!r}", spot.type
    return f"{spot.where()}, section {spot.dotted()!r}", spot.type


def _sentence(error: Mapping[str, Any], root: type, where: str, raw: Any) -> str:
    kind, loc, value = error["type"], tuple(error["loc"]), error.get("input")
    if kind in _UNKNOWN or kind == "missing":
        label, holder = _container(root, loc[:-1], where, raw)
        if kind == "missing":
            return f"{label}: missing required key {loc[-1]!r}"
        if not loc[:-1] and hasattr(root, "FILE_KEYS"):
            return f"{where}: unknown top-level key {loc[-1]!r}; allowed: {', '.join(root.FILE_KEYS)}"
        allowed = sorted(fields_of(holder))
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{label}: unknown key {loc[-1]!r}; {hint}allowed keys: {', '.join(allowed)}"
    spot = _locate(root, loc, where, raw)
    place, key = spot.where(), spot.dotted()
    named = f"{place}: {key!r}" if key else place
    if kind == "value_error":
        reason = str(error["ctx"]["error"])
        return f"{named} {reason}" if key and spot.field is not None and not fields_of(spot.type) else f"{place}: {reason}"
    says = next((m.text for m in spot.field.metadata if isinstance(m, Says)), None) if spot.field else None
    if says is not None:
        return f"{named} must be {says}, got {value!r}"
    if kind == "literal_error":
        return f"{named} must be one of {', '.join(map(str, typing.get_args(spot.type)))}, got {value!r}"
    if kind in _TYPE_NAMES:
        return f"{named} must be {_TYPE_NAMES[kind]}, got {type(value).__name__} {value!r}"
    if kind in _BOUNDS:
        low, high = _bounds(spot.field)
        return f"{named} must be between {low} and {high}, got {value}"
    if kind in _MAPPING:
        return f"{named} must be a mapping, got {type(value).__name__}"
    if kind in ("tuple_type", "list_type"):
        return f"{named} must be a list, got {type(value).__name__}"
    return f"{named}: {error['msg']}"


def explain(error: ValidationError, root: type, where: str, raw: Any = None) -> ConfigError:
    """One sentence for the first of ``error``'s problems: unknown keys first, then missing ones."""
    problems = sorted(error.errors(), key=lambda e: 0 if e["type"] in _UNKNOWN else 1 if e["type"] == "missing" else 2)
    return ConfigError(_sentence(problems[0], root, where, raw))
