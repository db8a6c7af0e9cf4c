"""The migration dashboard: a FastAPI app the Airflow API server mounts at ``/dynamo2mongo``.

``GET /dynamo2mongo/`` serves the page (static HTML and JavaScript, no build step); the page reads
``GET /dynamo2mongo/api/tables``, which needs the same login as the Airflow UI (its JWT cookie or a
bearer token) and lists only the tables whose migration DAG the user may read. The data comes from
the metadata database (``dynamo2mongo.operations.dashboard``), through each table's MongoDB connection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from dynamo2mongo.config import ConfigError, load_configuration
from dynamo2mongo.operations.dashboard import overview
from dynamo2mongo_airflow.connections import clients_by_connection

STATIC = Path(__file__).parent / "static"
URL_PREFIX = "/dynamo2mongo"

app = FastAPI(title="dynamo2mongo migration dashboard", docs_url=None, redoc_url=None, openapi_url=None)
app.mount("/static", StaticFiles(directory=STATIC), name="static")


@app.get("/", include_in_schema=False)
def page() -> FileResponse:
    # The page holds no data: what it shows comes from /api/tables, which checks the user.
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@app.get("/api/tables")
def tables(user: GetUserDep, hours: float = Query(24.0, gt=0, le=24 * 14,
                                                   description="how far back the lag chart reaches")) -> dict[str, Any]:
    try:
        configuration = load_configuration()
    except ConfigError as error:
        raise HTTPException(status_code=500, detail=str(error)) from error
    auth = get_auth_manager()
    readable = [t for t in configuration.tables
                if auth.is_authorized_dag(method="GET", details=DagDetails(id=t.dag_id), user=user)]
    with clients_by_connection() as client_for:
        return overview(client_for, configuration, readable, hours)
