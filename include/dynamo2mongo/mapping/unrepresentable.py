"""The mapping's one refusal: a value that cannot cross between the stores exactly (DESIGN §4).

Whoever converts an item or a document catches it and quarantines the change with its ``reason``,
which names the field path; never a silent loss or change.
"""

from __future__ import annotations

from dynamo2mongo.errors import Permanent


class Unrepresentable(Permanent, ValueError):
    """An item or document that cannot be converted exactly; ``reason`` says where and why."""

    def __init__(self, reason: str, path: tuple = ()):
        self.path = tuple(path)
        self.reason = f"{format_path(self.path)}: {reason}" if self.path else reason
        super().__init__(self.reason)


def format_path(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
