"""The compiled line conversion (native/, the ``dynamo2mongo_native`` extension), where it is installed.

``line_converter`` gives a function from one export line to the Extended JSON line the Python path
(``convert.convert_lines``: reader, ``to_bson.item_to_document``, the baseline mark, ``extjson.dumps``)
writes for it, or None for a line it leaves to that path: syntax outside what DynamoDB writes,
values DynamoDB cannot hold (which the Python path quarantines with their reason), duplicate names.
tests/unit/test_native.py holds the two paths to the same bytes. Without the extension (an image
built without a Rust toolchain) every line takes the Python path, about ten times slower.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

try:
    import dynamo2mongo_native
except ImportError:
    dynamo2mongo_native = None


def line_converter(export_format: str, key_attrs: tuple[str, ...]) -> Callable[[bytes], str | None] | None:
    if dynamo2mongo_native is None:
        log.warning("dynamo2mongo_native is not installed (pip install ./native): converting in Python")
        return None
    return dynamo2mongo_native.LineConverter(export_format, list(key_attrs)).convert
