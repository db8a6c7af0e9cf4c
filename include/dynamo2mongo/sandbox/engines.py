"""What a real account is configured with before the Lambda and DMS engines can deploy, made in the
emulator: an execution role for the forward-sync function, and a replication instance and a role for
DMS.

The emulator checks that they exist, nothing more (neither a role's trust nor the instance's network),
and in the sandbox the relays do the syncing: the engines' calls only exercise the deployment. The
production engines never make these; the sandbox's entry points (``sandbox.main``, the tests) make
them here and hand them in as the table's configuration, where an operator's ``tables.yaml`` names the
real ones.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import ClientError

from dynamo2mongo.aws_errors import error_code
from dynamo2mongo.config import DmsConfig, TableConfig, load_config

LAMBDA_ROLE = "dynamo2mongo-forward-sandbox"
DMS_ROLE = "dynamo2mongo-dms-sandbox"
DMS_INSTANCE = "dynamo2mongo-sandbox"
_DMS_SETTINGS = ("replication_instance_arn", "secrets_access_role_arn", "target_role_arn")


def ensure_role(iam: Any, name: str, service: str) -> str:
    """The ARN of the role ``name``, created trusting ``service`` (``lambda.amazonaws.com``...) if missing."""
    try:
        return iam.get_role(RoleName=name)["Role"]["Arn"]
    except ClientError as error:
        if error_code(error) != "NoSuchEntity":
            raise
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def lambda_role(iam: Any) -> str:
    return ensure_role(iam, LAMBDA_ROLE, "lambda.amazonaws.com")


def dms_instance(dms: Any) -> str:
    try:
        found = dms.describe_replication_instances(
            Filters=[{"Name": "replication-instance-id", "Values": [DMS_INSTANCE]}]
        )["ReplicationInstances"]
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundFault":
            raise
        found = []
    if found:
        return found[0]["ReplicationInstanceArn"]
    return dms.create_replication_instance(
        ReplicationInstanceIdentifier=DMS_INSTANCE, ReplicationInstanceClass="dms.t3.micro"
    )["ReplicationInstance"]["ReplicationInstanceArn"]


def dms_settings(dms: Any, iam: Any, settings: DmsConfig) -> DmsConfig:
    """``settings`` with the replication instance and roles it does not name made in the emulator."""
    role = settings.target_role_arn or settings.secrets_access_role_arn or ensure_role(iam, DMS_ROLE, "dms.amazonaws.com")
    return dataclasses.replace(
        settings,
        replication_instance_arn=settings.replication_instance_arn or dms_instance(dms),
        secrets_access_role_arn=settings.secrets_access_role_arn or role,
        target_role_arn=settings.target_role_arn or role,
    )


def provision(config: TableConfig, client: Callable[[str], Any]) -> dict[str, dict[str, str]]:
    """What the table's engines need and its configuration does not name, made in the emulator, as
    ``tables.yaml`` sections (``{"forward_lambda": {"role_arn": ...}}``); empty for the relays.

    :param client: makes the emulator's client of a service (``"iam"``, ``"dms"``).
    """
    sections: dict[str, dict[str, str]] = {}
    if config.sync.forward == "lambda" and not config.forward_lambda.role_arn:
        sections["forward_lambda"] = {"role_arn": lambda_role(client("iam"))}
    if config.sync.backward == "dms":
        filled = dms_settings(client("dms"), client("iam"), config.dms)
        missing = {key: getattr(filled, key) for key in _DMS_SETTINGS if not getattr(config.dms, key)}
        if missing:
            sections["dms"] = missing
    return sections


def provisioned_configuration(path: Path, client: Callable[[str], Any], destination: Path) -> Path:
    """The configuration file to run with: ``path`` itself when no table needs anything from ``provision``,
    else a copy written to ``destination`` with what was made filled into each table's entry."""
    raw = yaml.safe_load(path.read_text())
    entries = {entry["name"]: entry for entry in raw.get("tables") or []}
    changed = False
    for config in load_config(path):
        for section, values in provision(config, client).items():
            entries[config.name].setdefault(section, {}).update(values)
            changed = True
    if not changed:
        return path
    destination.write_text(yaml.safe_dump(raw, sort_keys=False))
    return destination
