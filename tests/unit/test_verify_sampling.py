"""Sampled verification picks MongoDB _ids with $sample, and on a scan where the server refuses it."""

from __future__ import annotations

import random

import pytest
from pymongo.errors import OperationFailure

from dynamo2mongo.verify import _sample_ids

IDS = [{"_id": n} for n in range(2000)]


class _Collection:
    def __init__(self, fail_after: int | None):
        self.fail_after = fail_after

    def aggregate(self, pipeline):
        assert pipeline[0] == {"$sample": {"size": 100}}
        if self.fail_after == 0:
            raise OperationFailure("Comparison method violates its general contract!")
        for position, document in enumerate(IDS[:100]):
            if position == self.fail_after:
                raise OperationFailure("cursor lost")
            yield document

    def find(self, query, projection):
        assert query == {} and projection == {"_id": 1}
        return iter(IDS)


def test_sample_is_used_where_the_server_does_it():
    assert list(_sample_ids(_Collection(None), 100, 0.05, random.Random(1))) == IDS[:100]


def test_a_refused_sample_falls_back_to_a_draw_over_a_scan():
    drawn = list(_sample_ids(_Collection(0), 100, 0.05, random.Random(1)))
    assert 60 <= len(drawn) <= 140 and len({d["_id"] for d in drawn}) == len(drawn)


def test_a_sample_failing_half_way_is_not_mixed_with_a_scan():
    with pytest.raises(OperationFailure, match="cursor lost"):
        list(_sample_ids(_Collection(10), 100, 0.05, random.Random(1)))
