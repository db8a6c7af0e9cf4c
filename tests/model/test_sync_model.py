"""The sync checker's CI seeds: generated histories through the real relays, checked against DESIGN §6.

A failure prints the seed, the rules broken and a shrunk history; replay one seed with
``python -m tests.model.soak --seeds 1 --start SEED --policy POLICY``, run hundreds with the soak.
"""

from __future__ import annotations

import pytest

from tests.model.history import generate
from tests.model.reference import verify

# Each policy gets its own seeds: the histories differ with the seed, the expectations with the policy.
CI_SEEDS = [(seed, "dynamodb_wins") for seed in (1, 2, 3, 4, 5, 6, 13)] + \
           [(seed, "mongodb_wins") for seed in (7, 8, 9, 10, 14)] + \
           [(seed, "latest_wins") for seed in (11, 12, 15)]

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("seed", "policy"), CI_SEEDS, ids=[f"{p}-{s}" for s, p in CI_SEEDS])
def test_generated_history_keeps_every_write(model_env, seed, policy):
    verify(model_env, generate(seed, policy))
