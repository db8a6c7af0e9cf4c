"""The retry classification: each domain error says by its base whether a retry can heal it."""

import importlib
import inspect
import pkgutil

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from pymongo.errors import AutoReconnect, ConfigurationError, OperationFailure

import dynamo2mongo
from dynamo2mongo.engines.dms import DmsError, DmsTimeout
from dynamo2mongo.errors import Permanent, Transient, cannot_heal
from dynamo2mongo.operations.cutover import OperationRefused
from dynamo2mongo.prepare.preflight import PreflightFailed


def _domain_errors():
    # The sandbox's tooling never runs inside a task; __main__ runs the CLI when imported.
    for module in pkgutil.walk_packages(dynamo2mongo.__path__, "dynamo2mongo."):
        if module.name.endswith("__main__") or module.name.startswith("dynamo2mongo.sandbox"):
            continue
        for name, value in vars(importlib.import_module(module.name)).items():
            if (inspect.isclass(value) and issubclass(value, Exception) and value.__module__ == module.name
                    and not name.startswith("_") and value not in (Permanent, Transient)):
                yield value


def test_every_domain_error_is_classified_where_it_is_defined():
    errors = list(_domain_errors())
    assert len(errors) >= 15
    unclassified = [e.__qualname__ for e in errors if not issubclass(e, (Permanent, Transient))]
    assert unclassified == []


def _client_error(code):
    return ClientError({"Error": {"Code": code, "Message": "no"}}, "DescribeTable")


@pytest.mark.parametrize("error", [
    OperationRefused("stop the writers first"),
    PreflightFailed("orders", ["no stream"]),
    DmsError("the endpoint test failed"),
    _client_error("AccessDeniedException"),
    _client_error("ValidationException"),
    ConfigurationError("bad uri"),
    OperationFailure("not authorized", code=13),
    OperationFailure("auth failed", code=18),
])
def test_permanent_errors_cannot_heal(error):
    assert cannot_heal(error)


@pytest.mark.parametrize("error", [
    DmsTimeout("the task is still starting"),
    _client_error("ThrottlingException"),
    _client_error("ProvisionedThroughputExceededException"),
    EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com"),
    AutoReconnect("primary stepped down"),
    OperationFailure("interrupted", code=11602),
    TimeoutError(),
    RuntimeError("anything unknown is retried"),
])
def test_transient_and_unknown_errors_may_heal(error):
    assert cannot_heal(error) is None


def test_a_transient_error_among_permanent_ones_is_transient():
    assert issubclass(DmsTimeout, DmsError) and issubclass(DmsError, Permanent)
    assert cannot_heal(DmsTimeout("t")) is None
    assert cannot_heal(DmsError("t")) == "DmsError does not go away by retrying"
