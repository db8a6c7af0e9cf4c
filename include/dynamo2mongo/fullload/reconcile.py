"""Reconcile what was imported against what the export manifest says it holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dynamo2mongo.errors import Permanent


class ReconcileFailed(Permanent, RuntimeError):
    """Counts differ; the message lists every file that does not add up."""


@dataclass
class FileCount:
    data_key: str
    manifest: int
    converted: int | None
    quarantined: int
    imported: int | None

    @property
    def ok(self) -> bool:
        return (
            self.converted is not None
            and self.imported is not None
            and self.converted + self.quarantined == self.manifest
            and self.imported == self.converted
        )

    def describe(self) -> str:
        return (
            f"{self.data_key}: manifest {self.manifest:,}, converted {_n(self.converted)}, "
            f"quarantined {self.quarantined:,}, imported {_n(self.imported)}"
        )


def _n(value: int | None) -> str:
    return "missing" if value is None else f"{value:,}"


@dataclass
class Reconciliation:
    manifest_items: int
    files: list[FileCount] = field(default_factory=list)
    collection_count: int = 0

    @property
    def imported(self) -> int:
        return sum(f.imported or 0 for f in self.files)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.files)

    @property
    def differences(self) -> list[str]:
        lines = [f.describe() for f in self.files if not f.ok]
        listed = sum(f.manifest for f in self.files)
        if listed != self.manifest_items:
            lines.append(
                f"manifest-files.json lists {listed:,} items but manifest-summary.json says {self.manifest_items:,}"
            )
        expected = self.manifest_items - self.quarantined
        if self.collection_count < expected:
            lines.append(
                f"the collection holds {self.collection_count:,} documents, fewer than the {expected:,} imported "
                f"(something deleted documents during the import)"
            )
        return lines

    def summary(self) -> dict[str, Any]:
        return {
            "manifest_items": self.manifest_items,
            "imported": self.imported,
            "quarantined": self.quarantined,
            "collection_count": self.collection_count,
            "files": len(self.files),
            "differences": self.differences,
        }


def reconcile(
    manifest_items: int,
    manifest_files: list[tuple[str, int]],
    results: dict[str, dict[str, Any]],
    quarantined: dict[str, int],
    collection_count: int,
) -> Reconciliation:
    """Compare per file: manifest itemCount = converted + quarantined, and imported = converted."""
    outcome = Reconciliation(manifest_items=manifest_items, collection_count=collection_count)
    for data_key, count in manifest_files:
        result = results.get(data_key, {})
        outcome.files.append(
            FileCount(
                data_key=data_key,
                manifest=count,
                converted=result.get("converted_items"),
                quarantined=quarantined.get(data_key, 0),
                imported=result.get("imported_items"),
            )
        )
    return outcome


def check(outcome: Reconciliation, table: str) -> None:
    differences = outcome.differences
    if differences:
        listing = "\n".join(f"  - {d}" for d in differences)
        raise ReconcileFailed(
            f"reconcile of {table!r}: imported {outcome.imported:,} of {outcome.manifest_items:,} exported items "
            f"({outcome.quarantined:,} quarantined); differences:\n{listing}\n"
            f"Clear the convert/import tasks of the files listed (they are idempotent), then this task."
        )
