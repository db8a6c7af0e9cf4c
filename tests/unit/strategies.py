"""Hypothesis strategies for DynamoDB wire-format items, shared by the mapping and reader tests."""

from __future__ import annotations

import decimal

from hypothesis import strategies as st

AWKWARD_NAMES = st.sampled_from(["$x", "a.b", "%", "%25", "_id", "_ddb", "", "\x00", "x\x00y", "é", "😀", "'q'", '"d"', "$", ".", "true", "null"])
names = st.one_of(st.text(min_size=1, max_size=12), AWKWARD_NAMES)
top_names = names.filter(bool)  # DynamoDB attribute names are never empty; nested map keys may be


def _number_text(draw_digits: str, exponent: int, negative: bool) -> str:
    value = decimal.Decimal(f"{'-' if negative else ''}{draw_digits}E{exponent}")
    return str(value)


@st.composite
def numbers(draw) -> str:
    """Valid DynamoDB numbers: up to 38 significant digits, magnitude 1E-130 .. <1E+126."""
    kind = draw(st.sampled_from(["small", "int64", "big", "decimal", "extreme", "spelling"]))
    if kind == "small":
        return str(draw(st.integers(-1000, 1000)))
    if kind == "int64":
        return str(draw(st.integers(-(2**63), 2**63 - 1)))
    if kind == "spelling":
        return draw(st.sampled_from(["1.500", "-0", "0.0", "15E-1", "1.5e0", "007", "1E+2", "-0.000"]))
    digits = draw(st.text("0123456789", min_size=1, max_size=38).filter(lambda d: d.strip("0")))
    digits = digits.lstrip("0")
    negative = draw(st.booleans())
    if kind == "big":
        return _number_text(digits, draw(st.integers(0, 125 - len(digits) + 1)), negative)
    if kind == "decimal":
        return _number_text(digits, draw(st.integers(-40, 0)), negative)
    # adjusted exponent (of the leading digit) at DynamoDB's limits: 1E-130 and 9.99..E+125
    adjusted = draw(st.sampled_from([-130, -129, 124, 125]))
    return _number_text(digits, adjusted - (len(digits) - 1), negative)


def _distinct_numbers(values: list[str]) -> bool:
    return len({decimal.Decimal(v) for v in values}) == len(values)


scalars = st.one_of(
    st.text(max_size=20).map(lambda s: {"S": s}),
    numbers().map(lambda n: {"N": n}),
    st.binary(max_size=20).map(lambda b: {"B": b}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.lists(st.text(max_size=8), min_size=1, max_size=5, unique=True).map(lambda v: {"SS": v}),
    st.lists(numbers(), min_size=1, max_size=5).filter(_distinct_numbers).map(lambda v: {"NS": v}),
    st.lists(st.binary(max_size=8), min_size=1, max_size=4, unique=True).map(lambda v: {"BS": v}),
)

values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda v: {"L": v}),
        st.dictionaries(names, children, max_size=4).map(lambda v: {"M": v}),
    ),
    max_leaves=12,
)

key_types = {
    "S": st.text(min_size=1, max_size=12).map(lambda s: {"S": s}),
    "N": numbers().map(lambda n: {"N": n}),
    "B": st.binary(min_size=1, max_size=12).map(lambda b: {"B": b}),
}


@st.composite
def items_with_keys(draw):
    """(item, key_attrs): a hash key, maybe a range key, and arbitrary other attributes."""
    hash_name = draw(top_names)
    key_attrs = (hash_name,)
    item = {hash_name: draw(key_types[draw(st.sampled_from("SNB"))])}
    if draw(st.booleans()):
        range_name = draw(top_names.filter(lambda n: n != hash_name))
        key_attrs = (hash_name, range_name)
        item[range_name] = draw(key_types[draw(st.sampled_from("SNB"))])
    for name, value in draw(st.dictionaries(top_names, values, max_size=6)).items():
        item.setdefault(name, value)
    return item, key_attrs


# ---- MongoDB documents an application may write, for the way back ----------------------------------

_FIELD_NAMES = st.one_of(st.text(max_size=8).filter(lambda n: "\x00" not in n), st.sampled_from(["", "%", "%a", "a", "$x", "a.b", "_id", "_ddb"]))


def _bson_scalars():
    import datetime as dt

    from bson import Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp

    return st.one_of(
        st.text(max_size=10),
        st.booleans(),
        st.none(),
        st.integers(-(2**63), 2**63 - 1),
        st.integers(-(2**63), 2**63 - 1).map(Int64),
        st.floats(),
        st.decimals(allow_nan=True).map(lambda d: Decimal128(str(d)) if _decimal128_fits(d) else Decimal128("NaN")),
        st.sampled_from(["NaN", "-Infinity", "1E+6144", "1E-6176", "1.50", "-0"]).map(Decimal128),
        st.binary(max_size=8),
        st.builds(Binary, st.binary(max_size=8), st.sampled_from([0, 0, 2, 3, 4, 5, 128])),
        st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
        st.builds(ObjectId),
        st.builds(Regex, st.text(max_size=4).filter(lambda p: "\x00" not in p)),
        st.builds(Code, st.text(max_size=4)),
        st.just(MinKey()),
        st.just(MaxKey()),
        st.builds(Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
        st.builds(DBRef, st.just("other"), st.integers(0, 9)),
    )


def _decimal128_fits(value: decimal.Decimal) -> bool:
    try:
        from bson import Decimal128

        Decimal128(str(value))
    except (ValueError, decimal.DecimalException):
        return False
    return True


def _hints(draw, document: dict) -> list:
    """Type hints for some of the document's paths, right or wrong, and now and then malformed ones."""
    paths: list[list] = []

    def walk(value, path):
        paths.append(path)
        if isinstance(value, dict):
            for name, inner in value.items():
                walk(inner, [*path, name])
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                walk(inner, [*path, index])

    for name, value in document.items():
        walk(value, [name])
    hint = st.fixed_dictionaries({"p": st.sampled_from(paths), "t": st.sampled_from(["N", "SS", "NS", "BS", "X"])})
    junk = st.one_of(st.just({"p": "x", "t": "N"}), st.just({"t": "SS"}), st.just(["N"]), st.just({"p": [{}], "t": 1}))
    return draw(st.lists(st.one_of(hint, hint, junk) if paths else junk, max_size=3))


@st.composite
def bson_documents(draw):
    """A document of a key field ``k`` and arbitrary BSON values, stored and read back as pymongo reads it,
    with type hints that may or may not fit."""
    import bson
    from bson.codec_options import CodecOptions, DatetimeConversion

    fields = st.recursive(
        _bson_scalars(),
        lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(_FIELD_NAMES, children, max_size=3)),
        max_leaves=8,
    )
    document = {"_id": "x", "k": "x", **draw(st.dictionaries(_FIELD_NAMES.filter(lambda n: n not in ("_id", "k")),
                                                             fields, max_size=5))}
    if draw(st.booleans()):
        document["_ddb"] = {"t": _hints(draw, {n: v for n, v in document.items() if n not in ("_id", "_ddb")})}
    options = CodecOptions(tz_aware=draw(st.booleans()),
                           datetime_conversion=draw(st.sampled_from([DatetimeConversion.DATETIME_AUTO,
                                                                     DatetimeConversion.DATETIME_MS])))
    return bson.decode(bson.encode(document), options)
