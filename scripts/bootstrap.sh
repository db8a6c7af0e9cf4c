#!/usr/bin/env bash
# Creates .venv (Python 3.11) and installs the pinned requirements; a no-op when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "dynamo2mongo needs Python 3.11 (found $("$python" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
command -v java >/dev/null 2>&1 || { echo "Java 17+ is needed for the embedded MongoDB (mongo-java-server); or set MONGO_URI" >&2; exit 1; }
command -v mvn >/dev/null 2>&1 || { echo "Maven is needed to fetch mongo-java-server from Maven Central; or set MONGO_URI" >&2; exit 1; }
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements.txt
  echo "$want" > "$stamp"
fi
