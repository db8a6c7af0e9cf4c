"""What an AWS error says, read the same way everywhere (shipped in the Lambda package: botocore only)."""

from __future__ import annotations

from botocore.exceptions import ClientError


def error_code(error: ClientError) -> str:
    """The service's error code (``ResourceNotFoundException``...), or "" when the response has none."""
    return error.response.get("Error", {}).get("Code", "")
