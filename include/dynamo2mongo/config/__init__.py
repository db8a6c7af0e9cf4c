"""Table configuration: the file that lists the tables to migrate, validated with clear errors.

``table`` declares one table's settings, ``document`` the file around them (defaults, plan, pools,
monitor), ``schema`` the JSON schema editors check ``tables.yaml`` with; ``errors`` words the failures.
"""

from dynamo2mongo.config.document import (
    MILESTONES,
    NOTIFY_EVENTS,
    NOTIFY_KINDS,
    Configuration,
    MonitorConfig,
    NotifyTarget,
    PlanConfig,
    PoolsConfig,
    Wave,
    default_config_path,
    load_config,
    Loaded,
    load_configuration,
    load_isolated,
    parse_config,
    parse_document,
)
from dynamo2mongo.config.errors import ConfigError
from dynamo2mongo.config.table import (
    BACKWARD_ENGINES,
    CONFLICT_POLICIES,
    ENVIRONMENTS,
    EXPORT_FORMATS,
    FORWARD_ENGINES,
    MONGO_TLS,
    NUMBER_MAPPINGS,
    DmsConfig,
    ExportConfig,
    ImportConfig,
    IndexConfig,
    LambdaConfig,
    OnCallConfig,
    RunParamSpec,
    SyncConfig,
    TableConfig,
    VerifyConfig,
    run_params,
)

__all__ = [
    "BACKWARD_ENGINES", "CONFLICT_POLICIES", "ENVIRONMENTS", "EXPORT_FORMATS", "FORWARD_ENGINES", "MILESTONES",
    "MONGO_TLS", "NOTIFY_EVENTS", "NOTIFY_KINDS", "NUMBER_MAPPINGS", "ConfigError", "Configuration", "DmsConfig",
    "ExportConfig", "ImportConfig", "IndexConfig", "LambdaConfig", "MonitorConfig", "NotifyTarget", "OnCallConfig",
    "PlanConfig", "PoolsConfig", "RunParamSpec", "SyncConfig", "TableConfig", "VerifyConfig", "Wave",
    "Loaded", "default_config_path", "load_config", "load_configuration", "load_isolated", "parse_config", "parse_document", "run_params",
]
