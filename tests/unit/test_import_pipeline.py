"""The import's parse-ahead thread: batches arrive in order, errors surface, an early stop ends it."""

from __future__ import annotations

import threading

import pytest

from dynamo2mongo.fullload import load


def test_batches_arrive_in_order_and_blank_lines_are_skipped():
    lines = [b'{"_id": {"$numberInt": "%d"}}\n' % i for i in range(7)] + [b"\n", b"  \n"]
    batches = list(load._ahead(load._parsed_batches(iter(lines), 3)))
    assert [[d["_id"] for d in batch] for batch in batches] == [[0, 1, 2], [3, 4, 5], [6]]


def test_a_line_that_is_not_json_fails_the_import_where_it_is_read():
    lines = [b'{"_id": 1}\n', b"{not json\n"]
    with pytest.raises(ValueError):
        list(load._ahead(load._parsed_batches(iter(lines), 1)))


def test_stopping_early_ends_the_parsing_thread():
    def endless():
        while True:
            yield b'{"_id": 1}\n'

    batches = load._ahead(load._parsed_batches(endless(), 10))
    assert len(next(batches)) == 10
    batches.close()
    assert not any(t.name == "d2m-import-parse" for t in threading.enumerate())
