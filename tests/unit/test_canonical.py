"""The content hash: its fast path (one pass, msgspec, integers without a Decimal) gives the bytes the
plain definition gives — canonical item, binary as hex, json.dumps with sorted keys — so marks written
by earlier versions and by either sync direction keep matching."""

from __future__ import annotations

import hashlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo2mongo.mapping.canonical import canonical_item, canonical_number, content_hash
from tests.unit.strategies import items_with_keys, numbers


def _definition(item):
    def hashable(value):
        if isinstance(value, dict):
            return {k: hashable(v) for k, v in value.items()}
        if isinstance(value, list):
            return [hashable(v) for v in value]
        if isinstance(value, (bytes, bytearray, memoryview)):
            return {"$b": bytes(value).hex()}
        return value

    text = json.dumps(hashable(canonical_item(item)), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


@settings(max_examples=400)
@given(items_with_keys())
def test_the_hash_is_the_definitions(case):
    item, _ = case
    assert content_hash(item) == _definition(item)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=30))
def test_strings_with_control_characters_and_astral_planes_hash_as_defined(text):
    item = {"k": {"S": text}, text or "x": {"M": {text: {"SS": [text, text + "\x00"]}}}}
    assert content_hash(item) == _definition(item)


@given(numbers())
def test_integers_skip_the_decimal_and_keep_their_spelling(text):
    from decimal import Context

    value = Context(prec=40).create_decimal(text)
    assert canonical_number(text) == canonical_number(str(value))


def test_spellings_of_one_number_hash_alike():
    spellings = ["10", "10.0", "1E1", "1.0e+1", "010"]
    assert len({content_hash({"n": {"N": s}}) for s in spellings}) == 1
    assert canonical_number("-0") == "0" and canonical_number("0.000") == "0"
