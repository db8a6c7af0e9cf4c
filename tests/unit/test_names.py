from hypothesis import given
from hypothesis import strategies as st

from dynamo2mongo.mapping.names import decode_name, encode_name

from .strategies import AWKWARD_NAMES

any_name = st.one_of(st.text(max_size=16), AWKWARD_NAMES)


@given(any_name, st.booleans())
def test_decode_inverts_encode(name, top_level):
    assert decode_name(encode_name(name, top_level)) == name


@given(any_name, any_name, st.booleans())
def test_encoding_is_injective(first, second, top_level):
    if first != second:
        assert encode_name(first, top_level) != encode_name(second, top_level)


@given(any_name, st.booleans())
def test_encoded_names_are_valid_mongodb_field_names(name, top_level):
    stored = encode_name(name, top_level)
    assert stored and not stored.startswith("$") and "." not in stored and "\x00" not in stored
    if top_level:
        assert stored not in ("_id", "_ddb")


def test_ordinary_names_are_untouched():
    for name in ("pk", "created_at", "Ünïcode", "a-b", "_private", "id"):
        assert encode_name(name, True) == name
