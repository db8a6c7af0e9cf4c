"""ION export lines to wire-format items.

DynamoDB writes one ``{Item:{...}}`` struct per line (the first line after the ``$ion_1_0`` version
marker), in a small, regular subset of the Ion text format: no whitespace, field names as
identifiers or quoted symbols, numbers as Ion decimals (``7.``, ``33956319d-2``), strings with
Ion escapes, binary as blobs (``{{aGk=}}``), null as ``null``, and sets as lists annotated
``$dynamodb_SS`` / ``$dynamodb_NS`` / ``$dynamodb_BS``.

amazon-ion (``simpleion``) is the reference reader, but it builds a typed object per value and was
most of a conversion's time. ``parse_line`` first reads the line with a small reader of that
subset: one regular expression cuts it into tokens, a recursive descent builds the item, numbers
get the same text the reference gives (``str`` of the Decimal). Anything outside the subset
(whitespace, comments, symbol IDs, floats, timestamps, long strings, other annotations, unknown
escapes, numbers beyond 40 digits or 4-digit exponents) goes to amazon-ion, which then reads it or
says why not. The differential tests hold the two readers to the same items and the same errors.

amazon-ion's C extension reads each text value (string, blob, symbol, number token) into a buffer of
a fixed size, 16 KB unless ``text_buffer_size_limit`` says otherwise, and stops at a larger one with
``IERR_BUFFER_TOO_SMALL``, ``IERR_LOOKAHEAD_OVERFLOW`` or ``IERR_TOKEN_TOO_LONG``: limits of the
reader, not faults of the line. DynamoDB values reach 400 KB, so ``parse_line_reference`` sizes the
buffers to the line (no value is longer than the line holding it), and a line the C extension still
stops at for one of its limits is read by amazon-ion's pure-Python reader, which has no such buffers.
A line is "not valid Ion" only when a reader says so about the text itself.
"""

from __future__ import annotations

import base64
import decimal
import functools
import io
import re
from collections.abc import Callable
from typing import Any

from amazon.ion import simpleion
from amazon.ion.core import IonType
from amazon.ion.exceptions import IonException
from amazon.ion.simple_types import IonPyNull

from dynamo2mongo.fullload.export import MalformedRecord

_SETS = {"$dynamodb_SS": "SS", "$dynamodb_NS": "NS", "$dynamodb_BS": "BS"}

# ---- the reference: amazon-ion -------------------------------------------------------------------


def _reference_number(value: Any, where: str) -> str:
    if value.ion_type is IonType.DECIMAL:
        return str(value)
    if value.ion_type is IonType.INT and not isinstance(value, bool):
        return str(int(value))
    raise MalformedRecord(f"{where}: a number must be an Ion decimal or int, got {value.ion_type.name}")


def _reference_value(value: Any, where: str) -> dict[str, Any]:
    ion_type = getattr(value, "ion_type", None)
    if ion_type is None:
        raise MalformedRecord(f"{where}: unexpected value {value!r:.80}")
    if value.ion_annotations and ion_type is IonType.LIST:
        kind = _SETS.get(value.ion_annotations[0].text)
        if kind is None:
            raise MalformedRecord(f"{where}: unknown annotation {value.ion_annotations[0].text!r}")
        if kind == "SS":
            if not all(getattr(v, "ion_type", None) is IonType.STRING for v in value):
                raise MalformedRecord(f"{where}: $dynamodb_SS elements must be strings")
            return {"SS": [str(v) for v in value]}
        if kind == "NS":
            return {"NS": [_reference_number(v, where) for v in value]}
        if not all(getattr(v, "ion_type", None) is IonType.BLOB for v in value):
            raise MalformedRecord(f"{where}: $dynamodb_BS elements must be blobs")
        return {"BS": [bytes(v) for v in value]}
    if value.ion_annotations:
        raise MalformedRecord(f"{where}: unexpected annotation on a {ion_type.name}")
    if isinstance(value, IonPyNull) and ion_type is not IonType.NULL:
        raise MalformedRecord(f"{where}: a typed null (null.{ion_type.name.lower()}) has no DynamoDB type")
    if ion_type is IonType.STRING:
        return {"S": str(value)}
    if ion_type in (IonType.DECIMAL, IonType.INT):
        return {"N": _reference_number(value, where)}
    if ion_type is IonType.STRUCT:
        return {"M": {name: _reference_value(inner, f"{where}.{name}") for name, inner in value.items()}}
    if ion_type is IonType.LIST:
        return {"L": [_reference_value(inner, f"{where}[{i}]") for i, inner in enumerate(value)]}
    if ion_type is IonType.BOOL:
        return {"BOOL": bool(value)}
    if ion_type is IonType.NULL:
        return {"NULL": True}
    if ion_type is IonType.BLOB:
        return {"B": bytes(value)}
    raise MalformedRecord(f"{where}: Ion {ion_type.name} has no DynamoDB type")


# The C extension's default buffer for one text value (amazon-ion 0.15: a string of 16,383 bytes
# reads, one of 16,384 does not); a line shorter than it cannot hold a value that overflows it.
_C_BUFFER = 1 << 14
# ion-c's errors that are limits of the reader (buffers, annotation slots, exponent range) or its
# own failures, not a verdict on the text: the pure-Python reader reads such a line again.
_READER_LIMITS = frozenset({
    "IERR_NO_MEMORY", "IERR_TOO_MANY_ANNOTATIONS", "IERR_BUFFER_TOO_SMALL", "IERR_UNREAD_LIMIT_EXCEEDED",
    "IERR_LOOKAHEAD_OVERFLOW", "IERR_TOKEN_TOO_LONG", "IERR_NUMERIC_OVERFLOW", "IERR_PARSER_INTERNAL",
    "IERR_INTERNAL_ERROR",
})  # fmt: skip
_TOO_DEEP = "nested deeper than amazon-ion reads (DynamoDB allows 32 levels)"


def _load(line: bytes | str) -> Any:
    """The line's Ion value, by amazon-ion: its C extension with buffers as large as the line, else
    (where that stops at one of its limits) its pure-Python reader; MalformedRecord with the true
    reason when neither reads it.

    The C extension stays the first reader, its buffers sized by its own option, rather than the
    pure-Python reader taking every large line: it reads a 400 KB string in milliseconds where the
    pure-Python reader takes seconds, and it reads every line alike (the pure-Python reader spells
    some wide numbers differently, the same value).
    """
    # Bytes of the line's UTF-8 (at most 4 per character of a str): no value of it is longer.
    size = len(line) if isinstance(line, bytes) else 4 * len(line)
    buffer = size + 1 if size >= _C_BUFFER else None
    try:
        return simpleion.loads(line, single_value=True, text_buffer_size_limit=buffer)
    except IonException as error:
        if isinstance(error.__cause__, RecursionError):
            raise MalformedRecord(f"{_TOO_DEEP}: {error}") from None
        if str(error).split(" ", 1)[0] not in _READER_LIMITS:
            raise MalformedRecord(f"not valid Ion: {error}") from None
        limit = str(error).strip()
    except Exception as error:  # amazon-ion raises plain Exceptions too (ValueError, ...)
        raise MalformedRecord(f"not valid Ion: {error}") from None
    source = io.BytesIO(line) if isinstance(line, bytes) else io.StringIO(line)
    try:
        return simpleion.load_python(source, single_value=True)
    except IonException as error:
        if isinstance(error.__cause__, RecursionError):
            raise MalformedRecord(f"{_TOO_DEEP}: {error}") from None
        raise MalformedRecord(f"not valid Ion: {error}") from None
    except Exception as error:  # a value past what Python reads (an int of more than 4,300 digits)
        raise MalformedRecord(f"an Ion value amazon-ion does not read ({limit}; pure Python: {error})") from None


def parse_line_reference(line: bytes | str) -> dict[str, Any]:
    """``parse_line`` through amazon-ion only."""
    record = _load(line)
    if getattr(record, "ion_type", None) is not IonType.STRUCT or "Item" not in record:
        raise MalformedRecord("expected a struct {Item:{...}}")
    item = record["Item"]
    if getattr(item, "ion_type", None) is not IonType.STRUCT:
        raise MalformedRecord("Item must be a struct")
    return {name: _reference_value(value, name) for name, value in item.items()}


# ---- the fast path: a reader for the subset DynamoDB writes ---------------------------------------


class _Unusual(Exception):
    """The line is outside the subset this reader reads: amazon-ion reads it."""


# One token per match, each with the comma before it; the last alternative takes any other
# character, so the tokens cover the whole line and nothing is skipped unread. A run of identifier
# characters that is no field name is one token (else each of its characters would start a field
# name scanned to the end of the run: quadratic in a long symbol or long string).
_TOKEN = re.compile(
    r""",?(?:[A-Za-z_$][A-Za-z0-9_$]*:(?!:)"""  # field name (identifier)
    r"""|"[^"\\\n]*(?:\\.[^"\\\n]*)*":?"""  # string (a field name when a colon follows)
    r"""|-?[0-9][0-9A-Za-z_.+-]*"""  # number, or anything that starts like one
    r"""|\{\{[^{}]*\}\}|[{}\[\]]|true|false|null"""  # blob, structure, keywords
    r"""|'[^'\\\n]*(?:\\.[^'\\\n]*)*':"""  # quoted symbol: field names only
    r"""|\$dynamodb_[SNB]S::\["""  # set
    r"""|[A-Za-z_$][A-Za-z0-9_$]*"""  # a symbol or keyword this reader leaves to amazon-ion
    r"""|.)""",
    re.DOTALL,
)
# From this length on a line is cut into tokens as it is read, so that the first token outside the
# subset ends the reading: text outside it (a long string, a quoted symbol) can make a token that
# does not close start at each of its quotes and scan to the end of the line, which over a whole
# line of hundreds of kilobytes would take minutes. Shorter lines are cut in one call, the faster.
_LAZY_FROM = 1 << 14
_GROUP = re.Match.group
_DECIMAL = re.compile(r"(-?(?:0|[1-9][0-9]*)(?:\.([0-9]*))?)(?:[dD]([+-]?[0-9]{1,4}))?")
_MAX_DIGITS, _QUAD_DIGITS = 40, 34
_KEYWORDS = frozenset({"true", "false", "null", "nan"})
_ESCAPE = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|(.))", re.DOTALL)
_SIMPLE_ESCAPES = {
    "a": "\a", "b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", "v": "\v",
    "?": "?", "0": "\0", "'": "'", '"': '"', "/": "/", "\\": "\\",
}  # fmt: skip
_NAMES: dict[str, str] = {}
_NAMES_LIMIT = 1 << 16


def _unescape(match: re.Match) -> str:
    hex2, hex4, hex8, char = match.groups()
    code = hex2 or hex4 or hex8
    if code is not None:
        value = int(code, 16)
        # Surrogates written as \U escapes, and code points past Unicode, are left to the reference.
        if value > 0x10FFFF or (hex8 is not None and 0xD800 <= value <= 0xDFFF):
            raise _Unusual
        return chr(value)
    if char not in _SIMPLE_ESCAPES:
        raise _Unusual
    return _SIMPLE_ESCAPES[char]


def _text(quoted: str) -> str:
    """The text of an Ion quoted string or symbol (quotes included, nothing after them)."""
    body = quoted[1:-1]
    if "\\" not in body:
        return body
    text = _ESCAPE.sub(_unescape, body)
    try:
        # Escaped UTF-16 surrogate pairs make one character, as in the reference; a lone one is an error there.
        return text.encode("utf-16", "surrogatepass").decode("utf-16")
    except (UnicodeError, ValueError):
        raise _Unusual from None


def _number(token: str) -> str:
    """The text the reference gives for an Ion int or decimal token: ``str`` of its value.

    Beyond 34 significant digits amazon-ion drops trailing zeros down to 34 digits (it reads into
    a 34-digit decimal when the value fits); such tokens are left to it.
    """
    if token[-1] == ".":
        # The usual shape, an integral decimal (``7.``), reads as its digits.
        digits = token[:-1]
        if digits.isdigit() and (digits[0] != "0" or len(digits) == 1) and len(digits) <= _QUAD_DIGITS:
            return digits
    match = _DECIMAL.fullmatch(token)
    if match is None:
        raise _Unusual
    coefficient, fraction, exponent = match.groups()
    if fraction is None and exponent is None:
        return str(int(coefficient))
    significant = coefficient.lstrip("-").replace(".", "").lstrip("0")
    if len(significant) > _MAX_DIGITS or (len(significant) > _QUAD_DIGITS and not significant[_QUAD_DIGITS:].strip("0")):
        raise _Unusual
    return str(decimal.Decimal(coefficient + "E" + exponent if exponent else coefficient))


def _blob(token: str) -> bytes:
    text = token[2:-2]
    # Ion wants whole base64 quanta with at most two padding characters, which b64decode does not
    # check on its own.
    data = text.rstrip("=")
    if len(text) % 4 or len(text) - len(data) > 2:
        raise _Unusual
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or a character outside ASCII
        raise _Unusual from None


def _name(token: str) -> str:
    """The field name of a name token (with the colon, and the comma when it follows another field)."""
    body = token[1:] if token[0] == "," else token
    if len(body) < 2 or body[-1] != ":" or body[0] in "{[" or body[0] == "$" and body[1:-1].isdigit():
        raise _Unusual
    first = body[0]
    if first == '"' or first == "'":
        name = _text(body[:-1])
    else:
        name = body[:-1]
        if name in _KEYWORDS:
            raise _Unusual
    if len(_NAMES) < _NAMES_LIMIT:
        _NAMES[token] = name
    return name


def _struct(tokens: Any) -> dict[str, Any]:
    attributes = {}
    token = next(tokens)
    if token == "}":
        return attributes
    if token[0] == ",":
        raise _Unusual
    # Field names repeat from line to line: their tokens are cached (bounded).
    while True:
        attributes[_NAMES.get(token) or _name(token)] = _value(next(tokens), tokens)
        token = next(tokens)
        if token == "}":
            return attributes
        if token[0] != ",":
            raise _Unusual


def _elements(tokens: Any, element: Callable[[str, Any], Any]) -> list:
    """The elements of a list or set whose ``[`` was read, up to its ``]``: ``element`` reads each
    from its first token (and the tokens after it)."""
    elements = []
    token = next(tokens)
    if token == "]":
        return elements
    while True:
        elements.append(element(token, tokens))
        token = next(tokens)
        if token == "]":
            return elements
        if token[0] != "," or len(token) == 1:
            raise _Unusual
        token = token[1:]


def _list(tokens: Any) -> list:
    return _elements(tokens, _value)


def _set_element(kind: str, token: str, tokens: Any) -> Any:
    if kind == "SS" and token[0] == '"' and token[-1] == '"' and len(token) > 1:
        return _text(token)
    if kind == "NS" and token[0] in "-0123456789":
        return _number(token)
    if kind == "BS" and token[:2] == "{{":
        return _blob(token)
    raise _Unusual


def _set(kind: str, tokens: Any) -> list:
    return _elements(tokens, functools.partial(_set_element, kind))


def _value(token: str, tokens: Any) -> dict[str, Any]:
    first = token[0]
    if first == '"':
        if token[-1] != '"' or len(token) == 1:
            raise _Unusual
        return {"S": _text(token)}
    if first in "-0123456789":
        return {"N": _number(token)}
    if token == "{":
        return {"M": _struct(tokens)}
    if token == "[":
        return {"L": _list(tokens)}
    if token == "true" or token == "false":
        return {"BOOL": token == "true"}
    if token == "null":
        return {"NULL": True}
    if first == "$" and token[-1] == "[":
        kind = token[10:12]
        return {kind: _set(kind, tokens)}
    if token[:2] == "{{":
        return {"B": _blob(token)}
    raise _Unusual


def _read(line: str) -> dict[str, Any]:
    if line.startswith("$ion_1_0 "):
        line = line[9:]
    line = line.rstrip("\r\n")
    tokens = iter(_TOKEN.findall(line)) if len(line) < _LAZY_FROM else map(_GROUP, _TOKEN.finditer(line))
    try:
        if next(tokens) != "{":
            raise _Unusual
        item = _struct(tokens).get("Item")
    except StopIteration:
        raise _Unusual from None
    if next(tokens, None) is not None or item is None or "M" not in item:
        raise _Unusual
    return item["M"]


def parse_line(line: bytes | str) -> dict[str, Any]:
    try:
        return _read(line.decode("utf-8") if isinstance(line, bytes) else line)
    except (_Unusual, UnicodeDecodeError, RecursionError, ValueError):
        # ValueError: an integer of more than 4,300 digits, which int() refuses to read.
        return parse_line_reference(line)
