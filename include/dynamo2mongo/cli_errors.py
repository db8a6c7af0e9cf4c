"""One line for each way a CLI command cannot reach or may not use MongoDB or AWS: what failed, where,
and the fix. No traceback: the operator reads the line, not the stack (``--log-level debug`` shows it).
"""

from __future__ import annotations

import urllib.parse

# How long a CLI command waits for MongoDB before it gives up (``--timeout`` / $D2M_TIMEOUT_SECONDS).
DEFAULT_TIMEOUT_SECONDS = 5.0
_TIMEOUT_OPTIONS = ("serverSelectionTimeoutMS", "connectTimeoutMS")


def with_timeout(uri: str, seconds: float) -> str:
    """``uri`` with server selection and connect timeouts of ``seconds``, unless it sets them itself."""
    parts = urllib.parse.urlsplit(uri)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    given = {key.lower() for key, _ in query}
    millis = str(max(1, int(seconds * 1000)))
    query += [(option, millis) for option in _TIMEOUT_OPTIONS if option.lower() not in given]
    # A URI without a path needs the "/" before its options.
    return urllib.parse.urlunsplit(parts._replace(path=parts.path or "/", query=urllib.parse.urlencode(query)))


def mongo_endpoint(uri: str) -> str:
    """The hosts of a MongoDB URI, without credentials or options."""
    parts = urllib.parse.urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def describe(error: BaseException, mongo_uri: str | None = None) -> str | None:
    """The one line for ``error``, or ``None`` when it is none of the kinds this module knows."""
    from botocore import exceptions as aws
    from pymongo import errors as mongo

    where = mongo_endpoint(mongo_uri) if mongo_uri else "MongoDB"
    if isinstance(error, mongo.ServerSelectionTimeoutError):
        reason = str(error).split(", Timeout:")[0].split(" (configured timeouts")[0]
        return (f"cannot reach MongoDB at {where}: {reason}; check the host, port, TLS and network in MONGO_URI "
                f"(or give it longer with --timeout)")
    if isinstance(error, mongo.OperationFailure) and error.code in (13, 18):
        what = "authentication failed" if error.code == 18 else "not authorized"
        detail = (error.details or {}).get("errmsg") or str(error)
        return f"MongoDB at {where} refused the command: {what} ({detail}); check the user, password and roles in MONGO_URI"
    if isinstance(error, mongo.ConfigurationError):
        return f"the MongoDB URI is not usable: {error}; check MONGO_URI (or --mongo-uri)"
    if isinstance(error, mongo.ConnectionFailure):
        return f"lost the connection to MongoDB at {where}: {error}; check that the server is up and reachable"
    if isinstance(error, aws.NoCredentialsError | aws.PartialCredentialsError):
        return ("no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or run where an instance or pod role provides them")
    if isinstance(error, aws.NoRegionError):
        return "no AWS region: set the table's 'region' in the configuration, or AWS_DEFAULT_REGION"
    if isinstance(error, aws.EndpointConnectionError | aws.ConnectTimeoutError):
        return (f"cannot reach AWS at {error.kwargs.get('endpoint_url', '?')}: {error}; check the network, a proxy, "
                f"or AWS_ENDPOINT_URL")
    if isinstance(error, aws.ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "")
        operation = getattr(error, "operation_name", "?")
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnrecognizedClientException",
                    "InvalidClientTokenId", "ExpiredTokenException", "ExpiredToken"):
            return (f"AWS refused {operation}: {code}: {message}; give the credentials' role the actions in "
                    f"docs/iam/relay-policy.json (or renew expired credentials)")
        if code == "ResourceNotFoundException":
            return f"AWS {operation}: {message or code}; check 'source_table' and 'region' in the configuration"
        return f"AWS {operation} failed: {code}: {message}"
    return None
