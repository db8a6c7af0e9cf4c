"""Registers the migration dashboard with Airflow: its API app and a "Migrations" entry in the UI."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from dynamo2mongo_airflow.dashboard import URL_PREFIX, app


class Dynamo2MongoPlugin(AirflowPlugin):
    name = "dynamo2mongo"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "dynamo2mongo migration dashboard"}]
    external_views = [{
        "name": "Migrations",
        "href": f"{URL_PREFIX}/",
        "destination": "nav",
        "url_route": "dynamo2mongo",
        "category": "browse",
    }]
