"""After the sync runs (DESIGN §2 indexes and verify): deferred indexes and the comparison of both sides."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def map_leaves(value: Any, leaf: Callable[[Any], Any]) -> Any:
    """``value`` with every value that is neither a mapping nor a list replaced by ``leaf(value)``:
    both report BSON values back in plain form (index specs, a field-by-field difference)."""
    if isinstance(value, Mapping):
        return {k: map_leaves(v, leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [map_leaves(v, leaf) for v in value]
    return leaf(value)
