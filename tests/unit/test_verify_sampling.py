"""Sampled verification picks MongoDB _ids with $sample; a failing $sample fails the verification."""

from __future__ import annotations

import pytest
from pymongo.errors import OperationFailure

from dynamo2mongo.finish.verify import _sample_ids

IDS = [{"_id": n} for n in range(2000)]


class _Collection:
    def __init__(self, fail_after: int | None):
        self.fail_after = fail_after

    def aggregate(self, pipeline):
        assert pipeline == [{"$sample": {"size": 100}}, {"$project": {"_id": 1}}]
        if self.fail_after == 0:
            raise OperationFailure("$sample refused")
        for position, document in enumerate(IDS[:100]):
            if position == self.fail_after:
                raise OperationFailure("cursor lost")
            yield document


def test_sample_is_used_where_the_server_does_it():
    assert list(_sample_ids(_Collection(None), 100)) == IDS[:100]


def test_a_refused_sample_is_an_error_not_a_scan():
    with pytest.raises(OperationFailure, match="refused"):
        list(_sample_ids(_Collection(0), 100))


def test_a_sample_failing_half_way_is_not_mixed_with_a_scan():
    with pytest.raises(OperationFailure, match="cursor lost"):
        list(_sample_ids(_Collection(10), 100))
