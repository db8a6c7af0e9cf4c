"""Results that count what one batch, file or pass did, and add up across many.

Forward sync's, backward sync's and verification's results each hold a set of whole-number counts
beside a few facts. The counts are named once, in the result's ``COUNTS``, so the fields, the sum
of two results and the counts reported cannot disagree about which counts there are.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, ClassVar


class Tally:
    """Base of a dataclass whose ``COUNTS`` are whole-number fields that start at 0.

    Each name in ``COUNTS`` becomes an ``int`` field with default 0, after the subclass's own
    fields (so fields without a default may come first), before ``@dataclass`` reads the class.
    """

    COUNTS: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "COUNTS" not in cls.__dict__:
            return
        annotations = cls.__dict__.get("__annotations__", {})
        cls.__annotations__ = {**annotations, **{name: "int" for name in cls.COUNTS}}
        for name in cls.COUNTS:
            setattr(cls, name, 0)

    def add(self, other: Tally) -> None:
        """Adds a later result of the same kind into this one: counts are summed, lists extended,
        the newer of two times kept, and any other fact is the later result's unless it has none."""
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            if field.name in self.COUNTS:
                setattr(self, field.name, mine + theirs)
            elif isinstance(mine, list):
                mine.extend(theirs)
            elif theirs:
                keep_mine = isinstance(theirs, dt.datetime) and mine is not None and mine > theirs
                setattr(self, field.name, mine if keep_mine else theirs)

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.COUNTS}
