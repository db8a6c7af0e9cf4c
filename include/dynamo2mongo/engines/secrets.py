"""The Secrets Manager secrets the deploy tasks write: the forward-sync function's MongoDB URI and the
DMS source endpoint's MongoDB credentials.

Shipped in the forward-sync deployment package along with the rest of the package (the Lambda
engine imports it), so it needs nothing but the standard library and botocore.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from dynamo2mongo.aws_errors import error_code


def _same(current: str | None, value: str) -> bool:
    if current == value:
        return True
    # A secret written by other means (the console, the CLI) may hold the same JSON object laid out
    # otherwise: storing ours would make a version that changes nothing.
    try:
        stored, wanted = json.loads(current or "null"), json.loads(value)
    except ValueError:
        return False
    return isinstance(wanted, dict) and stored == wanted


def ensure_secret(
    secretsmanager: Any,
    secret_id: str,
    value: str,
    *,
    description: str,
    purpose: str,
    setting: str,
    fail: Callable[[str], Exception],
) -> dict[str, Any]:
    """Create the secret, or store a new version when its value differs; returns its ARN and what changed.

    The value is a credential: it is neither logged, nor returned, nor put in an error.

    :param description: the description a created secret gets.
    :param purpose: what reads the secret, for errors ("the forward-sync function").
    :param setting: the configuration key that names the secret, for errors.
    :param fail: makes the caller's exception from a message.
    """
    try:
        current = secretsmanager.get_secret_value(SecretId=secret_id)
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise fail(
                f"cannot read secret {secret_id!r} for {purpose} ({error_code(error)}); a secret scheduled for deletion "
                f"must be restored first (aws secretsmanager restore-secret), and the deploying role needs "
                f"secretsmanager:GetSecretValue, CreateSecret and PutSecretValue on it"
            ) from None
        if secret_id.startswith("arn:"):
            raise fail(
                f"secret {secret_id} does not exist and a secret cannot be created from an ARN: set {setting} to a "
                f"secret name, or create the secret"
            ) from None
        created = secretsmanager.create_secret(Name=secret_id, SecretString=value, Description=description)
        return {"arn": created["ARN"], "created": True, "updated": False}
    if _same(current.get("SecretString"), value):
        return {"arn": current["ARN"], "created": False, "updated": False}
    secretsmanager.put_secret_value(SecretId=current["ARN"], SecretString=value)
    return {"arn": current["ARN"], "created": False, "updated": True}
