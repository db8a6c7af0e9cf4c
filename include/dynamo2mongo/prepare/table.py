"""What the migration needs to know about a DynamoDB table, from DescribeTable and friends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


class TableKey(NamedTuple):
    """The primary key: attribute names (hash first) and their types (S, N or B)."""

    attrs: tuple[str, ...]
    types: dict[str, str]


@dataclass(frozen=True)
class SecondaryIndex:
    name: str
    kind: str  # "LSI" or "GSI"
    key_attrs: tuple[str, ...]
    projection: str
    key_types: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TableDescription:
    name: str
    arn: str
    status: str
    key_attrs: tuple[str, ...]
    key_types: dict[str, str]
    indexes: tuple[SecondaryIndex, ...]
    size_bytes: int
    item_count: int
    stream_arn: str | None
    stream_view_type: str | None
    stream_enabled: bool
    pitr_enabled: bool

    @property
    def key(self) -> TableKey:
        return TableKey(self.key_attrs, self.key_types)

    def summary(self) -> dict[str, Any]:
        """Small, JSON-safe facts for logs and XCom."""
        return {
            "table": self.name,
            "arn": self.arn,
            "key": list(self.key_attrs),
            "key_types": self.key_types,
            "indexes": [{"name": i.name, "kind": i.kind, "key": list(i.key_attrs)} for i in self.indexes],
            "size_bytes": self.size_bytes,
            "item_count": self.item_count,
            "stream": {"enabled": self.stream_enabled, "view_type": self.stream_view_type, "arn": self.stream_arn},
            "pitr_enabled": self.pitr_enabled,
        }


def _key_attrs(key_schema: list[dict[str, str]]) -> tuple[str, ...]:
    by_role = {k["KeyType"]: k["AttributeName"] for k in key_schema}
    return tuple(name for name in (by_role.get("HASH"), by_role.get("RANGE")) if name)


def describe_table(dynamodb: Any, table_name: str) -> TableDescription:
    """DescribeTable + DescribeContinuousBackups for ``table_name`` (a boto3 DynamoDB client)."""
    table = dynamodb.describe_table(TableName=table_name)["Table"]
    types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
    indexes = []
    for kind, listing in (("LSI", "LocalSecondaryIndexes"), ("GSI", "GlobalSecondaryIndexes")):
        for index in table.get(listing, []):
            keys = _key_attrs(index["KeySchema"])
            indexes.append(
                SecondaryIndex(
                    name=index["IndexName"],
                    kind=kind,
                    key_attrs=keys,
                    projection=index.get("Projection", {}).get("ProjectionType", "ALL"),
                    key_types={k: types.get(k, "S") for k in keys},
                )
            )
    stream = table.get("StreamSpecification") or {}
    backups = dynamodb.describe_continuous_backups(TableName=table_name)["ContinuousBackupsDescription"]
    pitr = backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus") == "ENABLED"
    keys = _key_attrs(table["KeySchema"])
    return TableDescription(
        name=table["TableName"],
        arn=table["TableArn"],
        status=table.get("TableStatus", "ACTIVE"),
        key_attrs=keys,
        key_types={k: types[k] for k in keys},
        indexes=tuple(indexes),
        size_bytes=int(table.get("TableSizeBytes", 0)),
        item_count=int(table.get("ItemCount", 0)),
        stream_arn=table.get("LatestStreamArn") if stream.get("StreamEnabled") else None,
        stream_view_type=stream.get("StreamViewType") if stream.get("StreamEnabled") else None,
        stream_enabled=bool(stream.get("StreamEnabled")),
        pitr_enabled=pitr,
    )
