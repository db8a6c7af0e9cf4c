"""Whether a failure can heal by itself: the classification Airflow's retries act on.

Each domain error declares it by its base: ``Permanent`` when running again cannot succeed before
someone changes something (its message says what), ``Transient`` when a later attempt may. A new
error is classified where it is defined, so the Airflow glue never lists domain errors. A
``Transient`` subclass of a ``Permanent`` error (a wait that ran out, within an engine's errors)
is transient.

Errors of the libraries underneath carry no such base; ``cannot_heal`` reads their codes instead.
"""

from __future__ import annotations

from botocore.exceptions import ClientError
from pymongo.errors import ConfigurationError, OperationFailure

from dynamo2mongo.aws_errors import error_code


class Permanent(Exception):
    """A retry cannot succeed: the message says what to fix before running again."""


class Transient(Exception):
    """A retry may succeed: the condition can pass without anyone acting."""


# AWS error codes that no retry heals: credentials, permissions, malformed requests, a missing bucket.
# Throttling, limits and service errors are left to the retries with exponential backoff.
PERMANENT_AWS_CODES = frozenset({
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "ValidationException",
    "NoSuchBucket",
})
# MongoDB: Unauthorized, AuthenticationFailed. Network errors, elections and timeouts are retried.
PERMANENT_MONGO_CODES = frozenset({13, 18})


def cannot_heal(error: BaseException) -> str | None:
    """Why retrying ``error`` is pointless, or None when a retry may succeed."""
    if isinstance(error, Transient):
        return None
    if isinstance(error, Permanent):
        return f"{type(error).__name__} does not go away by retrying"
    if isinstance(error, ClientError):
        code = error_code(error)
        if code in PERMANENT_AWS_CODES:
            return f"AWS refused the request ({code}): fix the credentials, permissions or request, then clear the task"
    if isinstance(error, ConfigurationError):
        return "the MongoDB connection is misconfigured: fix the Airflow connection, then clear the task"
    if isinstance(error, OperationFailure) and error.code in PERMANENT_MONGO_CODES:
        return "MongoDB refused the credentials or the permission: fix the user's roles, then clear the task"
    return None

