"""Forward sync on AWS Lambda (DESIGN §2): the deployment package, the function, its event source
mapping, and the facts the lag sensor reads.

The function (include/lambda/handler.py) applies each batch of stream records with the same code as
the relay (dynamo2mongo.sync.forward). The event source mapping does the shard bookkeeping: it reads every
shard from TRIM_HORIZON in order, retries a failed batch from the lowest record the function reports
(ReportBatchItemFailures), bisects batches to isolate a record that keeps failing, and once the retries
are spent hands the batch's description to the on-failure destination instead of dropping it silently.

Every ``ensure_*`` function compares what exists with what the configuration asks for and changes only
the difference, so a redeploy of the same code and settings makes no change at all.

By idea: ``settings`` (what the function is told, and its MongoDB URI secret), ``package``,
``function``, ``mapping`` and ``lag``. This package is shipped inside the deployment package, so none
of them imports what the Lambda runtime lacks: the standard library and botocore. The names below are
the engine's interface; the glue, the handler and the tests use nothing else.
"""

from __future__ import annotations

from dynamo2mongo.engines.aws_lambda.function import ensure_function
from dynamo2mongo.engines.aws_lambda.lag import lambda_lag_facts
from dynamo2mongo.engines.aws_lambda.mapping import ensure_event_source_mapping
from dynamo2mongo.engines.aws_lambda.package import HANDLER_SOURCE, build_package, code_sha256
from dynamo2mongo.engines.aws_lambda.settings import (
    FunctionSettings,
    LambdaDeployError,
    ensure_mongo_secret,
    function_settings,
    mongo_secret_id,
    mongo_uri_with_options,
)

__all__ = [
    "HANDLER_SOURCE",
    "FunctionSettings",
    "LambdaDeployError",
    "build_package",
    "code_sha256",
    "ensure_event_source_mapping",
    "ensure_function",
    "ensure_mongo_secret",
    "function_settings",
    "lambda_lag_facts",
    "mongo_secret_id",
    "mongo_uri_with_options",
]
