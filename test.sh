#!/usr/bin/env bash
# The test suite; the harness starts and stops its own servers (moto, MongoDB wire server).
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
