import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def airflow_home(tmp_path_factory):
    """Plugins import Airflow: against a throw-away AIRFLOW_HOME, never the developer's."""
    home = tmp_path_factory.mktemp("airflow_home")
    os.environ.setdefault("AIRFLOW_HOME", str(home))
    return home
