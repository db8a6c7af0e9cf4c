"""The IAM policies in docs/iam/ against the AWS APIs the code calls, found statically.

Three identities call AWS: the Airflow AWS connection (everything under plugins/ and dags/, and the
domain code they reach), the forward-sync Lambda function's execution role (include/lambda/handler.py
and what it reaches) and the relays' credentials (``dynamo2mongo relay``, from cli.main). For each,
the AST of the code gives the calls it can make on boto3 clients; each identity's policy must allow
exactly those calls, what AWS checks on their behalf (an export writes to S3 as its caller; creating a
function or endpoint passes a role) and what a service does with the role (the event source mapping
reads the stream as the function). Nothing more: a permission no code needs fails the test too.

A call's service comes from the client it is made on: a variable or attribute named like the clients
the code passes around (``dynamodb``, ``streams``, ``s3``...), a client made in place
(``boto3.client("secretsmanager")``, ``self.aws(config, "lambda")``), or a provider hook. The method
must be an operation of that service in botocore's model, a waiter or paginator of it, or an S3
transfer method. A call whose client cannot be told fails the test rather than being guessed.

include/dynamo2mongo/sandbox/ talks only to the emulator (it makes there what a real account is
configured with: the function's role, the DMS instance and roles); the test checks that the scanned
code neither reaches it nor decides what to call by an ``environment == "sandbox"`` test.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import importlib.metadata
import inspect
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name

from dynamo2mongo.engines import dms as dms_engine, aws_lambda as lambda_engine

from dynamo2mongo.prepare import preflight
from dynamo2mongo.config import DmsConfig, ExportConfig, TableConfig

ROOT = Path(__file__).resolve().parents[2]
IAM = ROOT / "docs" / "iam"
SOURCES = ("include/dynamo2mongo", "include/lambda", "plugins", "dags")
EXCLUDED = ("include/dynamo2mongo/sandbox/",)

# Where each identity's code starts; everything these reach, function by function, runs as it.
ENTRY_POINTS = {
    "dag": ("plugins/", "dags/"),
    "lambda": ("include/lambda/handler.py",),
    "relay": ("include/dynamo2mongo/cli.py:main",),
}
POLICY_FILES = {"dag": "dag-policy.json", "lambda": "lambda-role-policy.json", "relay": "relay-policy.json"}

# Where a test for the sandbox environment is a default, not a branch to emulator-only code: TLS is
# optional there unless the table says otherwise.
SANDBOX_TESTS_ALLOWED = ("include/dynamo2mongo/config/",)

# Names the code gives its clients.
CLIENT_NAMES = {
    "dynamodb": "dynamodb",
    "streams": "dynamodbstreams",
    "dynamodbstreams": "dynamodbstreams",
    "s3": "s3",
    "secretsmanager": "secretsmanager",
    "lambda_client": "lambda",
    "cloudwatch": "cloudwatch",
    "dms": "dms",
    "iam": "iam",
}
# Amazon provider hooks whose client (``.conn`` / ``get_waiter``) the code uses.
HOOK_SERVICES = {"DmsHook": "dms", "DynamoDBClientHook": "dynamodb"}
# Provider code that calls AWS on our behalf: methods we call on a provider hook, and base classes
# whose inherited methods do (DmsTaskBaseSensor.poke reads the task's status).
PROVIDER_METHODS = {"get_task_description": ("dms", "DescribeReplicationTasks")}
PROVIDER_BASES = {"DmsTaskBaseSensor": ("dms", "DescribeReplicationTasks")}
# Provider classes that call AWS once built and called (the SNS notifier publishes to its topic).
PROVIDER_CLASSES = {"SnsNotifier": ("sns", "Publish")}
# boto3's managed transfers (not in botocore's model): the operations they may send.
S3_TRANSFERS = {
    "upload_file": (
        "PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload"
    ),
}
# IAM actions that differ from "<service>:<Operation>" (Service Authorization Reference).
IAM_PREFIX = {"dynamodbstreams": "dynamodb"}
IAM_ACTION = {
    ("s3", "CreateMultipartUpload"): "s3:PutObject",
    ("s3", "UploadPart"): "s3:PutObject",
    ("s3", "CompleteMultipartUpload"): "s3:PutObject",
}
# Permissions AWS checks besides the action itself when the code makes these calls: the export writes
# to S3 as its caller, a created function or endpoint passes a role, and tags given at creation need
# the tagging action (the Service Authorization Reference's table of API operations).
IMPLIED = {
    "dynamodb:ExportTableToPointInTime": {"s3:PutObject", "s3:PutObjectAcl", "s3:AbortMultipartUpload"},
    "lambda:CreateFunction": {"iam:PassRole"},
    "lambda:UpdateFunctionConfiguration": {"iam:PassRole"},
    "dms:CreateEndpoint": {"iam:PassRole", "dms:AddTagsToResource"},
    "dms:ModifyEndpoint": {"iam:PassRole"},
    "dms:CreateReplicationTask": {"dms:AddTagsToResource"},
}
# What a service does as the role, not the code: Lambda's event source mapping reads the stream with
# the function's role, and the runtime writes the function's logs with it.
SERVICE_USE = {
    "lambda": {
        "dynamodb:DescribeStream",
        "dynamodb:GetShardIterator",
        "dynamodb:GetRecords",
        "dynamodb:ListStreams",
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
}
# Actions with no resource type in the Service Authorization Reference: "*" is their only resource.
UNSCOPED = {
    "lambda:CreateEventSourceMapping",
    "lambda:ListEventSourceMappings",
    "cloudwatch:GetMetricStatistics",
    "dms:DescribeEndpoints",
    "dms:DescribeConnections",
    "dms:DescribeReplicationTasks",
    "dynamodb:ListTables",
}
# The execution role docs/security.md tells to create for the forward-sync function.
LAMBDA_ROLE = "dynamo2mongo-forward-${Name}"
PLACEHOLDERS = {"${Region}", "${Account}", "${Table}", "${Bucket}", "${Prefix}", "${Name}", "${NotificationTopic}"}


@dataclass(frozen=True)
class Call:
    where: str  # path:line
    service: str
    operation: str


@dataclass
class Function:
    key: str  # path:name or path:Class.name
    path: str
    node: ast.AST
    owner: str | None = None  # the class of a method
    calls: list[Call] = field(default_factory=list)
    refs: set[str] = field(default_factory=set)


# Located, not imported: importing airflow takes seconds.
PROVIDER = importlib.metadata.distribution("apache-airflow-providers-amazon")


@cache
def _model():
    return botocore.session.get_session()


@cache
def _operations(service: str) -> dict[str, str]:
    return {xform_name(name): name for name in _model().get_service_model(service).operation_names}


@cache
def _all_operation_names() -> frozenset[str]:
    return frozenset(name for service in set(CLIENT_NAMES.values()) for name in _operations(service))


def _waiter_operation(service: str, name: str) -> str:
    # The Amazon provider's own waiters (hook.get_waiter) are looked up before botocore's.
    custom = Path(PROVIDER.locate_file(f"airflow/providers/amazon/aws/waiters/{service}.json"))
    if custom.exists():
        waiters = json.loads(custom.read_text())["waiters"]
        if name in waiters:
            return waiters[name]["operation"]
    model = _model().get_waiter_model(service)
    by_name = {xform_name(w): w for w in model.waiter_names}
    assert name in by_name, f"{service} has no waiter {name!r}"
    return model.get_waiter(by_name[name]).operation


def _paginator_operation(service: str, name: str) -> str:
    assert name in _operations(service), f"{service} has no paginator {name!r}"
    return _operations(service)[name]


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _module_name(path: str) -> str:
    parts = Path(path).with_suffix("").parts
    for prefix in ("include", "plugins"):
        if parts[0] == prefix:
            parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


class Module:
    def __init__(self, path: str):
        self.path = path
        self.tree = ast.parse((ROOT / path).read_text(), path)
        self.name = _module_name(path)
        self.functions: dict[str, Function] = {}
        self.classes: dict[str, ast.ClassDef] = {}
        body = [n for n in self.tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        self.functions["<module>"] = Function(f"{path}:<module>", path, ast.Module(body=body, type_ignores=[]))
        for node in self.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions[node.name] = Function(f"{path}:{node.name}", path, node)
            elif isinstance(node, ast.ClassDef):
                self.classes[node.name] = node
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        name = f"{node.name}.{item.name}"
                        self.functions[name] = Function(f"{path}:{name}", path, item, node.name)
        # Imports anywhere in the file (the CLI imports inside its functions): local name -> target.
        self.imports: dict[str, tuple[str, str | None]] = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = (node.module, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = (alias.name, None)


class Codebase:
    def __init__(self) -> None:
        self.modules: dict[str, Module] = {}
        for source in SOURCES:
            for file in sorted((ROOT / source).rglob("*.py")):
                path = file.relative_to(ROOT).as_posix()
                if not path.startswith(EXCLUDED):
                    module = Module(path)
                    self.modules[module.name] = module
        self.by_path = {m.path: m for m in self.modules.values()}
        self.functions = {f.key: f for m in self.modules.values() for f in m.functions.values()}
        self.unresolved: list[str] = []
        for module in self.modules.values():
            for function in module.functions.values():
                self._scan(module, function)

    # ---- names to functions -------------------------------------------------------------------

    def _target(self, module: Module, name: str) -> tuple[Module, str] | None:
        """The module and top-level name a local name stands for, when it is in the scanned code."""
        if name in module.functions or name in module.classes:
            return module, name
        if name not in module.imports:
            return None
        source, attr = module.imports[name]
        if attr is None:
            return None
        if f"{source}.{attr}" in self.modules:
            return None  # a module, not a name in one
        target = self.modules.get(source)
        if target is not None and (attr in target.functions or attr in target.classes):
            return target, attr
        return None

    def _module_alias(self, module: Module, name: str) -> Module | None:
        if name not in module.imports:
            return None
        source, attr = module.imports[name]
        return self.modules.get(f"{source}.{attr}" if attr else source)

    def _class_members(self, module: Module, class_name: str) -> Iterator[str]:
        """Keys of a class's methods and of its scanned base classes' (the class is instantiated)."""
        node = module.classes[class_name]
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield f"{module.path}:{class_name}.{item.name}"
        for base in node.bases:
            if isinstance(base, ast.Name) and (found := self._target(module, base.id)) and found[1] in found[0].classes:
                yield from self._class_members(*found)

    def references(self, module: Module, owner: str | None, node: ast.AST) -> Iterator[str]:
        """Keys of the scanned functions a name or attribute stands for (a class: all its methods)."""
        found: tuple[Module, str] | None = None
        if isinstance(node, ast.Name):
            found = self._target(module, node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "self" and owner:
                methods = [k for k in self._class_members(module, owner) if k.endswith(f".{node.attr}")]
                yield from methods[:1]
                return
            if (alias := self._module_alias(module, node.value.id)) is not None:
                # A package's own names, or those its __init__ imports from its modules.
                found = self._target(alias, node.attr)
            elif (cls := self._target(module, node.value.id)) and cls[1] in cls[0].classes:
                method = f"{cls[1]}.{node.attr}"
                if method in cls[0].functions:
                    yield cls[0].functions[method].key
                return
        if found is None:
            return
        target, name = found
        if name in target.classes:
            yield from self._class_members(target, name)
        else:
            yield target.functions[name].key

    # ---- clients and calls --------------------------------------------------------------------

    def _service(self, node: ast.AST, local: dict[str, str]) -> str | None:
        if isinstance(node, ast.Name):
            return local.get(node.id) or CLIENT_NAMES.get(node.id)
        if isinstance(node, ast.Attribute):
            if node.attr == "conn":
                return self._service(node.value, local)
            return CLIENT_NAMES.get(node.attr)
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in HOOK_SERVICES:
                return HOOK_SERVICES[func.id]
            if isinstance(func, ast.Attribute) and func.attr in ("client", "aws", "_client"):
                literals = [_literal(a) for a in node.args if _literal(a)]
                return literals[-1] if literals else None
            if isinstance(func, ast.Attribute) and func.attr == "get_conn":
                return self._service(func.value, local)
        return None

    def _parameter_literals(self, module: Module, function: Function, parameter: str) -> list[str]:
        """The string literals passed for one parameter of ``function`` wherever its module calls it."""
        node = function.node
        names = [a.arg for a in node.args.args]
        position, name = names.index(parameter), function.key.rsplit(":", 1)[1]
        values = []
        for call in ast.walk(module.tree):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == name:
                argument = call.args[position] if position < len(call.args) else None
                argument = argument or next((k.value for k in call.keywords if k.arg == parameter), None)
                values.append(_literal(argument))
        assert values and all(values), f"{function.key}: cannot tell which {parameter!r} its callers pass"
        return values

    def _names(self, module: Module, function: Function, node: ast.AST) -> list[str]:
        if _literal(node):
            return [_literal(node)]
        if isinstance(node, ast.Name) and isinstance(function.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.id in [a.arg for a in function.node.args.args]:
                return self._parameter_literals(module, function, node.id)
        raise AssertionError(f"{function.key}: cannot tell which waiter or paginator {ast.unparse(node)!r} names")

    def _hook_class(self, module: Module, function: Function) -> str | None:
        node = module.classes.get(function.owner)
        for item in node.body if node else ():
            if isinstance(item, ast.Assign) and any(getattr(t, "id", None) == "aws_hook_class" for t in item.targets):
                return getattr(item.value, "id", None)
        return None

    def _scan(self, module: Module, function: Function) -> None:
        local: dict[str, str] = {}
        for node in ast.walk(function.node):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                if service := self._service(node.value, local):
                    local[node.targets[0].id] = service
        record = function.calls.append
        for node in ast.walk(function.node):
            if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Load):
                function.refs.update(self.references(module, function.owner, node))
            if not isinstance(node, ast.Call):
                continue
            where = f"{function.path}:{node.lineno}"
            for keyword in node.keywords:
                # An AwsBaseWaiterTrigger: the waiter runs on the client of the class's aws_hook_class.
                if keyword.arg == "waiter_name" and (hook := self._hook_class(module, function)):
                    service = HOOK_SERVICES[hook]
                    record(Call(where, service, _waiter_operation(service, _literal(keyword.value))))
            func = node.func
            if isinstance(func, ast.Name) and func.id == "create_waiter_with_client":
                name, model, client = node.args
                service = self._service(client, local)
                waiter_model = getattr(importlib.import_module(module.name), model.id)
                record(Call(where, service, waiter_model.get_waiter(_literal(name)).operation))
                continue
            if isinstance(func, ast.Name) and func.id in PROVIDER_CLASSES:
                record(Call(where, *PROVIDER_CLASSES[func.id]))
                continue
            if not isinstance(func, ast.Attribute):
                continue
            method, service = func.attr, self._service(func.value, local)
            if service is None:
                if method in PROVIDER_METHODS:
                    record(Call(where, *PROVIDER_METHODS[method]))
                elif method in _all_operation_names() or method in ("get_waiter", "get_paginator"):
                    self.unresolved.append(f"{where}: {ast.unparse(func)}(")
                continue
            if method == "get_waiter":
                for name in self._names(module, function, node.args[0]):
                    record(Call(where, service, _waiter_operation(service, name)))
            elif method == "get_paginator":
                for name in self._names(module, function, node.args[0]):
                    record(Call(where, service, _paginator_operation(service, name)))
            elif service == "s3" and method in S3_TRANSFERS:
                for operation in S3_TRANSFERS[method]:
                    record(Call(where, service, operation))
            elif method in _operations(service):
                record(Call(where, service, _operations(service)[method]))
            else:
                self.unresolved.append(f"{where}: {ast.unparse(func)}( is no {service} operation")
        if function.owner is not None:
            owner = module.classes[function.owner]
            for base in owner.bases:
                if isinstance(base, ast.Name) and base.id in PROVIDER_BASES:
                    record(Call(f"{function.path}:{owner.lineno}", *PROVIDER_BASES[base.id]))

    # ---- who runs what ------------------------------------------------------------------------

    def entry_functions(self, identity: str) -> set[str]:
        keys = set()
        for entry in ENTRY_POINTS[identity]:
            if ":" in entry:
                keys.add(entry)
            else:
                keys.update(k for k in self.functions if k.startswith(entry))
        return keys

    def reachable(self, identity: str) -> set[str]:
        seen: set[str] = set()
        pending = list(self.entry_functions(identity))
        while pending:
            key = pending.pop()
            if key in seen:
                continue
            seen.add(key)
            pending.extend(self.functions[key].refs)
        return seen

    def calls(self, identity: str) -> set[Call]:
        return {call for key in self.reachable(identity) for call in self.functions[key].calls}


@pytest.fixture(scope="module")
def code() -> Codebase:
    return Codebase()


def iam_action(call: Call) -> str:
    default = f"{IAM_PREFIX.get(call.service, call.service)}:{call.operation}"
    return IAM_ACTION.get((call.service, call.operation), default)


def needed(code: Codebase, identity: str) -> dict[str, list[str]]:
    """IAM action -> where the code needs it."""
    actions: dict[str, list[str]] = {}
    for call in sorted(code.calls(identity), key=lambda c: c.where):
        action = iam_action(call)
        actions.setdefault(action, []).append(f"{call.where} ({call.service} {call.operation})")
        for implied in IMPLIED.get(action, ()):
            actions.setdefault(implied, []).append(f"implied by {action} at {call.where}")
    for action in SERVICE_USE.get(identity, ()):
        actions.setdefault(action, []).append(f"used by the {identity} service with this role")
    return actions


def load(name: str) -> dict:
    return json.loads((IAM / name).read_text())


def statements(document: dict) -> list[dict]:
    assert document["Version"] == "2012-10-17"
    return document["Statement"]


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def granted(document: dict) -> set[str]:
    return {a for s in statements(document) for a in as_list(s["Action"])}


def resources_for(document: dict, action: str) -> list[str]:
    return [r for s in statements(document) if action in as_list(s["Action"]) for r in as_list(s["Resource"])]


ALL_POLICIES = {
    **{f"{identity} ({name})": load(name) for identity, name in POLICY_FILES.items()},
    **{f"DMS {role}": load("dms-policy.json")[role]["PolicyDocument"] for role in ("SecretsAccessRole", "TargetRole")},
}


# ---- the scan itself --------------------------------------------------------------------------


def test_every_call_on_an_aws_client_names_its_service(code):
    assert code.unresolved == [], (
        "calls whose client the test cannot tell (name the client like the others, or extend CLIENT_NAMES):\n"
        + "\n".join(code.unresolved)
    )


def test_the_scan_finds_the_calls_each_identity_is_known_to_make(code):
    # A guard on the scanner itself: if these go missing, it stopped seeing calls.
    assert {"dynamodb:ExportTableToPointInTime", "lambda:GetFunction", "dms:DescribeConnections",
            "dynamodb:DescribeExport", "dms:DescribeReplicationTasks"} <= set(needed(code, "dag"))
    assert {"secretsmanager:GetSecretValue", "dynamodb:PutItem"} <= set(needed(code, "lambda"))
    assert {"dynamodb:GetRecords", "dynamodb:BatchWriteItem"} <= set(needed(code, "relay"))
    assert "lambda:CreateFunction" not in needed(code, "lambda") and "s3:GetObject" not in needed(code, "relay")


def test_production_code_neither_reaches_the_sandbox_nor_branches_on_it(code):
    for module in code.modules.values():
        for source, name in module.imports.values():
            imported = f"{source}.{name}" if name else source
            assert not imported.startswith("dynamo2mongo.sandbox"), f"{module.path} imports {imported}"
        if module.path.startswith(SANDBOX_TESTS_ALLOWED):
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                assert not any(getattr(o, "value", None) == "sandbox" for o in operands), (
                    f"{module.path}:{node.lineno} decides by the sandbox environment; let the sandbox supply "
                    f"what differs (dynamo2mongo.sandbox.engines) instead"
                )


def test_every_aws_call_is_run_by_some_identity(code):
    # A call no entry point reaches is either dead or run from somewhere ENTRY_POINTS does not know:
    # either way no policy is checked against it.
    reached = set().union(*(code.reachable(identity) for identity in ENTRY_POINTS))
    idle = sorted(f.key for f in code.functions.values() if f.calls and f.key not in reached)
    assert idle == [], f"AWS calls that no identity's entry points reach: {idle}"


# ---- each identity's policy -------------------------------------------------------------------


@pytest.mark.parametrize("identity", sorted(POLICY_FILES))
def test_policy_allows_what_the_code_calls_and_nothing_else(code, identity):
    want = needed(code, identity)
    have = granted(load(POLICY_FILES[identity]))
    missing = {action: want[action] for action in sorted(set(want) - have)}
    assert not missing, f"{POLICY_FILES[identity]} lacks:\n" + "\n".join(f"  {a}: {w}" for a, w in missing.items())
    assert have <= set(want), f"{POLICY_FILES[identity]} grants what no code needs: {sorted(have - set(want))}"


@pytest.mark.parametrize("label", sorted(ALL_POLICIES))
def test_policies_are_scoped(label):
    document = ALL_POLICIES[label]
    for statement in statements(document):
        assert statement["Effect"] == "Allow" and statement.get("Sid"), statement
        for action in as_list(statement["Action"]):
            assert "*" not in action, f"{label}: wildcard action {action}"
        for resource in as_list(statement["Resource"]):
            if resource == "*":
                assert set(as_list(statement["Action"])) <= UNSCOPED, f"{label}: {statement['Sid']} on every resource"
                continue
            assert resource.startswith("arn:aws:"), resource
            if not resource.startswith("arn:aws:s3:::"):
                assert ":${Region}:" in resource or resource.startswith("arn:aws:iam::"), resource
                assert "${Account}" in resource, resource
        used = set(re.findall(r"\$\{[^}]*\}", json.dumps(statement)))
        assert used <= PLACEHOLDERS, f"{label}: unknown placeholders {used - PLACEHOLDERS}"


# ---- names the code gives the resources -------------------------------------------------------


def _placeholder_table() -> TableConfig:
    return TableConfig(name="${Name}", source_table="${Table}", database="db", collection="coll",
                       export=ExportConfig(s3_bucket="${Bucket}", s3_prefix="${Prefix}"))


def test_resources_are_the_ones_the_code_names():
    config = _placeholder_table()
    function = f"arn:aws:lambda:${{Region}}:${{Account}}:function:{config.lambda_function_name}"
    dag, function_role = load("dag-policy.json"), load("lambda-role-policy.json")
    assert resources_for(dag, "lambda:CreateFunction") == [function]
    conditions = [s["Condition"] for s in statements(dag) if "lambda:CreateEventSourceMapping" in as_list(s["Action"])]
    assert conditions == [{"StringEquals": {"lambda:FunctionArn": function}}]
    log_group = f"arn:aws:logs:${{Region}}:${{Account}}:log-group:/aws/lambda/{config.lambda_function_name}:*"
    assert resources_for(function_role, "logs:PutLogEvents") == [log_group]

    # The deploy task writes the function's secret, which the function then reads.
    secret = f"arn:aws:secretsmanager:${{Region}}:${{Account}}:secret:{lambda_engine.mongo_secret_id(config)}-abcdef"
    assert any(fnmatch.fnmatchcase(secret, p) for p in resources_for(function_role, "secretsmanager:GetSecretValue"))
    assert any(fnmatch.fnmatchcase(secret, p) for p in resources_for(dag, "secretsmanager:CreateSecret"))
    dms = load("dms-policy.json")
    dms_secret = (
        "arn:aws:secretsmanager:${Region}:${Account}:secret:"
        f"{dms_engine.source_secret_id(DmsConfig(), config)}-abcdef"
    )
    secrets_role = dms["SecretsAccessRole"]["PolicyDocument"]
    assert any(fnmatch.fnmatchcase(dms_secret, p) for p in resources_for(secrets_role, "secretsmanager:GetSecretValue"))
    assert any(fnmatch.fnmatchcase(dms_secret, p) for p in resources_for(dag, "secretsmanager:PutSecretValue"))

    table = "arn:aws:dynamodb:${Region}:${Account}:table/${Table}"
    assert resources_for(dag, "dynamodb:ExportTableToPointInTime") == [table]
    exported = "arn:aws:s3:::${Bucket}/${Prefix}/AWSDynamoDB/01234567890123-abcdefgh/manifest-summary.json"
    for action in ("s3:PutObject", "s3:GetObject"):
        assert [fnmatch.fnmatchcase(exported, p) for p in resources_for(dag, action)] == [True]
    # The only object the DAG deletes is preflight's write probe.
    assert "{prefix}/_dynamo2mongo_preflight/" in inspect.getsource(preflight.check_source)
    assert resources_for(dag, "s3:DeleteObject") == ["arn:aws:s3:::${Bucket}/${Prefix}/_dynamo2mongo_preflight/*"]
    for document in (function_role, load("relay-policy.json")):
        assert resources_for(document, "dynamodb:PutItem") == [table]
        assert resources_for(document, "dynamodb:GetRecords") == [f"{table}/stream/*"]


def test_passed_roles_are_the_documented_ones():
    dms = load("dms-policy.json")
    passed: dict[str, set[str]] = {}
    for statement in statements(load("dag-policy.json")):
        if "iam:PassRole" in as_list(statement["Action"]):
            for service in as_list(statement["Condition"]["StringEquals"]["iam:PassedToService"]):
                passed.setdefault(service.replace(".${Region}", ""), set()).update(as_list(statement["Resource"]))
    roles = "arn:aws:iam::${Account}:role/"
    dms_roles = {roles + dms[name]["RoleName"] for name in ("SecretsAccessRole", "TargetRole")}
    assert passed == {"lambda.amazonaws.com": {roles + LAMBDA_ROLE}, "dms.amazonaws.com": dms_roles}
    trusted = {
        role: [s["Principal"]["Service"] for s in statements(dms[role]["AssumeRolePolicyDocument"])]
        for role in ("SecretsAccessRole", "TargetRole")
    }
    assert trusted == {"SecretsAccessRole": ["dms.${Region}.amazonaws.com"], "TargetRole": ["dms.amazonaws.com"]}


def test_dms_target_role_cannot_create_or_drop_the_table():
    # The task never prepares the target (TargetTablePrepMode DO_NOTHING): the role may only write items.
    assert dms_engine.task_settings()["FullLoadSettings"]["TargetTablePrepMode"] == "DO_NOTHING"
    target = load("dms-policy.json")["TargetRole"]["PolicyDocument"]
    table = "arn:aws:dynamodb:${Region}:${Account}:table/${Table}"
    on_table = {a for s in statements(target) if table in as_list(s["Resource"]) for a in as_list(s["Action"])}
    assert on_table == {"dynamodb:DescribeTable", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
