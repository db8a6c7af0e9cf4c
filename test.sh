#!/usr/bin/env bash
# The test suite; the harness starts and stops its own servers (moto, MongoDB wire server, Airflow's
# API server for the dashboard test). Screenshots of the dashboard land in .artifacts/.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
scripts/install-chromium.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
