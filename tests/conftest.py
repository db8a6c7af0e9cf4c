"""Session-wide servers, started lazily: a test that asks for none of these fixtures starts nothing."""

from __future__ import annotations

import os

import boto3
import pytest
from pymongo import MongoClient

from dynamo2mongo.sandbox.servers import mongo_server, moto_server, sandbox_env


# Small export files, so that every export in the tests spans several data files.
EXPORT_ITEMS_PER_FILE = 250


@pytest.fixture(scope="session")
def aws_endpoint():
    with moto_server(export_items_per_file=EXPORT_ITEMS_PER_FILE) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def mongo_uri():
    with mongo_server() as uri:
        yield uri


@pytest.fixture(scope="session")
def aws_env(aws_endpoint):
    patch = pytest.MonkeyPatch()
    for key, value in sandbox_env(aws_endpoint).items():
        patch.setenv(key, value)
    yield dict(os.environ)
    patch.undo()


def _client(service, endpoint):
    return boto3.session.Session().client(service, endpoint_url=endpoint)


@pytest.fixture(scope="session")
def dynamodb(aws_env, aws_endpoint):
    return _client("dynamodb", aws_endpoint)


@pytest.fixture(scope="session")
def dynamodbstreams(aws_env, aws_endpoint):
    return _client("dynamodbstreams", aws_endpoint)


@pytest.fixture(scope="session")
def s3(aws_env, aws_endpoint):
    return _client("s3", aws_endpoint)


@pytest.fixture(scope="session")
def mongo_client(mongo_uri):
    # As every client of the project (dynamo2mongo.connections): dates come back aware, in UTC.
    client = MongoClient(mongo_uri, tz_aware=True)
    yield client
    client.close()
