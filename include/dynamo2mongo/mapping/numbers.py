"""DynamoDB's numbers, both ways: N text to a BSON number, and a number back to N text (DESIGN §4).

| N | MongoDB | hint |
|---|---|---|
| integral, in int64 | int (bson picks int32/int64) | |
| other, <= 34 digits | Decimal128 of the normalized value | |
| other | canonical decimal string | ``N`` |

Numbers are normalized first (1.5 and 1.50 are the same DynamoDB number and must be the same BSON
value, for they may sit inside ``_id``). ``number_mapping="double_when_exact"`` stores a non-key
number as a double when the double's shortest text is the same number (1.5, 0.1, 1e+30), for
applications that want doubles; numbers a double cannot hold exactly keep the lossless mapping.
A number DynamoDB cannot hold (NaN, Infinity, more than 38 digits, out of its range) is
``Unrepresentable``.
"""

from __future__ import annotations

import decimal
import re
from typing import Any

from bson import Decimal128

from dynamo2mongo.mapping.unrepresentable import Unrepresentable

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_DECIMAL128_DIGITS = 34
# DynamoDB numbers: up to 38 significant digits, magnitude 1E-130 .. 9.99..E+125.
_DDB_DIGITS, _DDB_MIN_ADJUSTED, _DDB_MAX_ADJUSTED = 38, -130, 125
_DDB_RANGE = "at most 38 significant digits, magnitude 1E-130 to 9.9999999999999999999999999999999999999E+125"
# DynamoDB's number syntax, to tell why a text is refused: its digits are ASCII, where the decimal
# module and int() also read other scripts' digits ("٣" is 3).
_DDB_NUMBER = re.compile(r"[+-]?([0-9]*)(?:\.([0-9]*))?(?:[eE][+-]?[0-9]+)?", re.ASCII)
_NOT_FINITE = re.compile(r"[+-]?(?:s?nan[0-9]*|inf|infinity)", re.ASCII | re.IGNORECASE)
# Reads a DynamoDB number exactly and traps any it cannot hold: more digits (Inexact), a larger
# (Overflow) or a smaller magnitude (Subnormal).
_DDB_CONTEXT = decimal.Context(
    prec=_DDB_DIGITS,
    Emax=_DDB_MAX_ADJUSTED,
    Emin=_DDB_MIN_ADJUSTED,
    traps=[decimal.InvalidOperation, decimal.Inexact, decimal.Overflow, decimal.Subnormal],
)
_CONTEXT = decimal.Context(prec=60, Emax=999_999, Emin=-999_999)
# Plain number spellings, read without building a Decimal; anything else (other digits, spaces,
# "Infinity", huge exponents) takes the checked path, ddb_decimal.
_PLAIN_NUMBER = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]{1,9}))?", re.ASCII)
_DECIMAL128_BIAS = 6176
_LOW_64 = (1 << 64) - 1


def _shown(value: Any) -> str:
    """``value`` for a reason, which names the value but need not hold all of a huge one."""
    text = value if isinstance(value, str) else str(value)
    shown, more = (text, "") if len(text) <= 80 else (text[:60], f"... ({len(text):,} characters)")
    return (repr(shown) if isinstance(value, str) else shown) + more


def _out_of_range(value: Any, path: tuple) -> Unrepresentable:
    return Unrepresentable(f"{_shown(value)} is outside DynamoDB's number range ({_DDB_RANGE})", path)


def ddb_decimal(text: Any, path: tuple) -> decimal.Decimal:
    """The number DynamoDB holds for ``text``; Unrepresentable for what it cannot hold."""
    if not isinstance(text, str):
        raise Unrepresentable(f"number must be a string, got {type(text).__name__}", path)
    # Given ASCII, create_decimal reads DynamoDB's syntax and, besides, NaN and Infinity.
    if text.isascii():
        try:
            value = _DDB_CONTEXT.create_decimal(text)
        except decimal.DecimalException:
            value = None
        if value is not None and value.is_finite():
            return value
    match = _DDB_NUMBER.fullmatch(text)
    if match is None or not (match[1] or match[2]):
        if _NOT_FINITE.fullmatch(text):
            raise Unrepresentable(f"{_shown(text)} is not a finite number", path)
        if not text.isascii():
            raise Unrepresentable(f"{_shown(text)} is not a number: DynamoDB numbers use ASCII digits only", path)
        raise Unrepresentable(f"{_shown(text)} is not a number", path)
    significant = (match[1] + (match[2] or "")).strip("0")
    if len(significant) > _DDB_DIGITS:
        raise Unrepresentable(
            f"{_shown(text)} has {len(significant)} significant digits; DynamoDB numbers have at most {_DDB_DIGITS}", path
        )
    raise _out_of_range(text, path)


def plain_number(text: str) -> Any:
    """int or Decimal128 for a plain spelling that needs neither rounding nor a hint, else None.

    The same values as _decimal_number: the digits are normalized (trailing zeros moved
    into the exponent) and the Decimal128 is built from its BID bits (IEEE 754-2008 decimal128,
    binary significand), as bson would build it from the normalized Decimal.
    """
    match = _PLAIN_NUMBER.fullmatch(text)
    if match is None:
        return None
    sign, whole, fraction, exponent = match.groups()
    fraction = fraction or ""
    if not whole and not fraction:
        return None
    digits = (whole + fraction).lstrip("0")
    if not digits:
        return 0
    significant = digits.rstrip("0")
    scale = int(exponent or 0) - len(fraction) + len(digits) - len(significant)
    if scale >= 0 and len(significant) + scale <= 19:
        integral = int(significant) * 10**scale
        if sign == "-":
            integral = -integral
        if INT64_MIN <= integral <= INT64_MAX:
            return integral
    # Numbers DynamoDB cannot hold go to the checked path for their reason; the others fit Decimal128's
    # exponent range.
    if len(significant) > _DECIMAL128_DIGITS or not _DDB_MIN_ADJUSTED <= scale + len(significant) - 1 <= _DDB_MAX_ADJUSTED:
        return None
    coefficient = int(significant)
    high = ((scale + _DECIMAL128_BIAS) << 49) | (coefficient >> 64)
    if sign == "-":
        high |= 1 << 63
    return Decimal128((high, coefficient & _LOW_64))


def number_to_value(text: str, path: tuple, hints: list | None, doubles: bool = False) -> Any:
    """N text to int, Decimal128, float (``doubles``) or canonical string (+ an ``N`` hint)."""
    if type(text) is str:
        # isdigit() alone also takes other scripts' digits, which int() reads ("٣") or refuses ("²").
        if len(text) < 19 and text.isascii() and (text.isdigit() or (text[:1] == "-" and text[1:].isdigit())):
            return int(text)
        plain = plain_number(text)
        if plain is not None and (not doubles or type(plain) is int):
            return plain
    return _decimal_number(text, path, hints, doubles)


def _decimal_number(text: str, path: tuple, hints: list | None, doubles: bool) -> Any:
    value = ddb_decimal(text, path)
    if value == value.to_integral_value():
        integral = int(value)
        if INT64_MIN <= integral <= INT64_MAX:
            return integral
    normal = value.normalize(_CONTEXT)
    if doubles:
        double = float(normal)
        if _CONTEXT.create_decimal(repr(double)) == normal:
            return double
    if len(normal.as_tuple().digits) <= _DECIMAL128_DIGITS:
        return Decimal128(normal)
    if hints is not None:
        hints.append({"p": list(path), "t": "N"})
    return str(normal)


def number_text(value: decimal.Decimal | int, path: tuple) -> str:
    """A valid DynamoDB number string for ``value``, or Unrepresentable when DynamoDB cannot hold it."""
    if isinstance(value, int):
        if -(10**_DDB_DIGITS) < value < 10**_DDB_DIGITS:
            return str(value)
        value = decimal.Decimal(value)
    if not value.is_finite():
        raise Unrepresentable(f"{value} is not a finite number", path)
    if value == 0:
        return "0"
    # adjusted() needs no context, so a huge exponent cannot overflow it; normalizing rounds past the
    # context's 60 digits, and the exact comparison then tells.
    adjusted = value.adjusted()
    normal = value.normalize(_CONTEXT) if _DDB_MIN_ADJUSTED <= adjusted <= _DDB_MAX_ADJUSTED else None
    if normal is None or normal != value or len(normal.as_tuple().digits) > _DDB_DIGITS:
        raise _out_of_range(value, path)
    if normal == normal.to_integral_value() and adjusted < _DDB_DIGITS:
        return str(int(normal))
    return str(normal)


def number_attr_text(value: Any, path: tuple) -> str:
    """N text for a value an application stored as a number (or a number's string)."""
    if isinstance(value, bool):
        raise Unrepresentable("a boolean in a number set", path)
    if isinstance(value, int):
        return number_text(value, path)
    if isinstance(value, Decimal128):
        return number_text(value.to_decimal(), path)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise Unrepresentable(f"{value} is not a finite number", path)
        return number_text(_CONTEXT.create_decimal(repr(value)), path)
    if isinstance(value, str):
        return number_text(ddb_decimal(value, path), path)
    raise Unrepresentable(f"{type(value).__name__} is not a number", path)
