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
