from __future__ import annotations

import pytest

from tests.model.runner import connect


@pytest.fixture(scope="session")
def model_env(aws_env, aws_endpoint, mongo_uri):
    with connect(aws_endpoint, mongo_uri) as env:
        yield env
