"""One table's configuration error stays that table's: every other DAG loads, its own DAG shows it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dynamo2mongo.config import ConfigError, load_isolated

DAGS = Path(__file__).resolve().parents[2] / "dags"
SHIPPED = Path(__file__).resolve().parents[2] / "config" / "tables.yaml"


def _file(tmp_path: Path, **bad: object) -> Path:
    document = yaml.safe_load(SHIPPED.read_text())
    good = document["tables"][0]
    document["tables"].append({**good, "name": "broken", "source_table": "other", **bad})
    path = tmp_path / "tables.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_a_bad_key_in_one_table_leaves_the_others(tmp_path):
    loaded = load_isolated(_file(tmp_path, sink={"typo": 1}))
    assert [t.name for t in loaded.configuration.tables] == ["sample_orders"]
    assert list(loaded.rejected) == ["broken"]
    assert "'broken'" in str(loaded.rejected["broken"]) and "sink" in str(loaded.rejected["broken"])


def test_a_table_without_a_usable_name_is_shown_by_its_place(tmp_path):
    loaded = load_isolated(_file(tmp_path, name="no spaces allowed"))
    assert list(loaded.rejected) == ["table_2"]


def test_errors_outside_the_tables_still_fail_the_file(tmp_path):
    path = _file(tmp_path, sink={"typo": 1})
    document = yaml.safe_load(path.read_text())
    document["pools"] = {"exports": "two"}
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match="pools"):
        load_isolated(path)


def test_dag_bag_loads_the_good_table_and_shows_the_bad_one(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("D2M_CONFIG", str(_file(tmp_path, sink={"typo": 1})))
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    assert {"dynamo2mongo__sample_orders", "dynamo2mongo__sample_orders__operations", "dynamo2mongo__monitor",
            "dynamo2mongo__broken"} <= set(bag.dag_ids)
    broken = bag.dags["dynamo2mongo__broken"]
    assert "configuration error" in broken.tags and "sink" in broken.doc_md
    assert [t.task_id for t in broken.tasks] == ["configuration_error"]
    with pytest.raises(ConfigError, match="sink"):
        broken.task_dict["configuration_error"].python_callable()
