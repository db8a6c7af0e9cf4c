#!/usr/bin/env bash
# Live migration of the sample table on the embedded sandbox (moto server + MongoDB wire server).
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/python -m dynamo2mongo.sandbox.main "$@"
