"""The forward-sync function: created, or its code and configuration updated where they differ."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, WaiterError

from dynamo2mongo.aws_errors import error_code
from dynamo2mongo.engines.aws_lambda.package import ARCHITECTURE, RUNTIME, code_sha256
from dynamo2mongo.engines.aws_lambda.settings import FunctionSettings, LambdaDeployError, function_settings

if TYPE_CHECKING:
    from dynamo2mongo.config import TableConfig

HANDLER = "handler.handler"
_WAITER = {"Delay": 2, "MaxAttempts": 150}


def _wait(lambda_client: Any, waiter: str, function_name: str) -> None:
    try:
        lambda_client.get_waiter(waiter).wait(FunctionName=function_name, WaiterConfig=_WAITER)
    except WaiterError as error:
        raise LambdaDeployError(
            f"Lambda function {function_name} did not become ready ({waiter}: {error}); its State/LastUpdateStatus "
            f"reason in the Lambda console says why (often the role's permissions or the VPC). Fix it and clear "
            f"this task"
        ) from None


def _function_configuration(config: TableConfig, role_arn: str, settings: FunctionSettings) -> dict[str, Any]:
    return {
        "Role": role_arn,
        "Handler": HANDLER,
        "Runtime": RUNTIME,
        "MemorySize": config.forward_lambda.memory_mb,
        "Timeout": config.forward_lambda.timeout_seconds,
        "Environment": {"Variables": settings.to_env()},
        "Description": (
            f"dynamo2mongo forward sync: DynamoDB {config.source_table} to MongoDB "
            f"{config.database}.{config.collection}"
        )[:256],
    }


def _configuration_differs(current: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    differs = []
    for key, value in wanted.items():
        have = current.get(key)
        if key == "Environment":
            have = {"Variables": (have or {}).get("Variables") or {}}
        if have != value:
            differs.append(key)
    return differs


def ensure_function(
    lambda_client: Any,
    config: TableConfig,
    zip_bytes: bytes,
    secret_arn: str,
    key_attrs: tuple[str, ...],
) -> dict[str, Any]:
    """Create the forward-sync function, or update its code (when CodeSha256 differs) and configuration
    (when any setting differs); returns its facts."""
    name = config.lambda_function_name
    role = config.forward_lambda.role_arn
    if not role:
        raise LambdaDeployError(
            f"table {config.name!r}: forward_lambda.role_arn is not set; the forward-sync function needs an execution "
            f"role: DynamoDB Streams read, dynamodb:PutItem/DeleteItem on {config.source_table} (a dynamodb_wins "
            f"conflict resolution writes back), secretsmanager:GetSecretValue on {secret_arn}, CloudWatch Logs"
        )
    wanted = _function_configuration(config, role, function_settings(config, key_attrs, secret_arn))
    sha = code_sha256(zip_bytes)
    facts = {"function_name": name, "created": False, "code_updated": False, "configuration_updated": []}
    try:
        current = lambda_client.get_function(FunctionName=name)["Configuration"]
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
        lambda_client.create_function(
            FunctionName=name,
            Code={"ZipFile": zip_bytes},
            PackageType="Zip",
            Architectures=[ARCHITECTURE],
            **wanted,
        )
        facts["created"] = True
        _wait(lambda_client, "function_active_v2", name)
    else:
        # Lambda refuses a change while the function is still being created or updated (a previous
        # attempt may have stopped right after asking for one).
        if current.get("State") == "Pending":
            _wait(lambda_client, "function_active_v2", name)
        if current.get("LastUpdateStatus") == "InProgress":
            _wait(lambda_client, "function_updated_v2", name)
        if current.get("CodeSha256") != sha or current.get("Architectures", ["x86_64"]) != [ARCHITECTURE]:
            lambda_client.update_function_code(FunctionName=name, ZipFile=zip_bytes, Architectures=[ARCHITECTURE])
            facts["code_updated"] = True
            _wait(lambda_client, "function_updated_v2", name)
        differs = _configuration_differs(current, wanted)
        if differs:
            lambda_client.update_function_configuration(FunctionName=name, **wanted)
            facts["configuration_updated"] = differs
            _wait(lambda_client, "function_updated_v2", name)
    final = lambda_client.get_function(FunctionName=name)["Configuration"]
    if final.get("CodeSha256") != sha:
        raise LambdaDeployError(
            f"Lambda function {name} reports CodeSha256 {final.get('CodeSha256')} after deploying {sha}: another "
            f"deployment changed it meanwhile; clear this task once that one is done"
        )
    facts.update(
        function_arn=final["FunctionArn"], code_sha256=sha, runtime=final.get("Runtime"), state=final.get("State")
    )
    return facts
