"""Reversible encoding of attribute names MongoDB cannot hold as they are (DESIGN §4).

A name is stored unchanged unless it is empty, starts with ``$`` or ``%``, contains ``.`` or NUL,
or (top level only) is one of our reserved fields ``_id`` and ``_ddb``. Such a name is stored as
``%`` followed by the name with ``%``, ``$``, ``.`` and NUL percent-escaped. Every stored name that
starts with ``%`` is an encoded one and every other is literal, so the encoding is injective.
"""

from __future__ import annotations

import re

RESERVED_TOP_LEVEL = frozenset({"_id", "_ddb"})
_ESCAPE = {"%": "%25", "$": "%24", ".": "%2E", "\x00": "%00"}
_NEEDS_ESCAPE = re.compile(r"[%$.\x00]")
_UNESCAPE = re.compile(r"%(25|24|2E|00)")
_UNESCAPED = {"25": "%", "24": "$", "2E": ".", "00": "\x00"}


def needs_encoding(name: str, top_level: bool) -> bool:
    return (
        not name
        or name[0] in "$%"
        or "." in name
        or "\x00" in name
        or (top_level and name in RESERVED_TOP_LEVEL)
    )


def encode_name(name: str, top_level: bool) -> str:
    if not needs_encoding(name, top_level):
        return name
    return "%" + _NEEDS_ESCAPE.sub(lambda m: _ESCAPE[m.group()], name)


def decode_name(stored: str) -> str:
    if not stored.startswith("%"):
        return stored
    return _UNESCAPE.sub(lambda m: _UNESCAPED[m.group(1)], stored[1:])
