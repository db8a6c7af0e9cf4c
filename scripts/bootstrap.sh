#!/usr/bin/env bash
# Creates .venv (Python 3.11), installs the pinned requirements and builds the compiled line conversion
# (native/, Rust: cargo fetches its locked crates from crates.io); a no-op when nothing changed.
# D2M_NO_NATIVE=1 skips the Rust build: conversion then runs in Python, about ten times slower.
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
step() { echo "bootstrap: $*" >&2; }
[ -x .venv/bin/python ] || { step "creating .venv with $("$python" --version 2>&1)"; "$python" -m venv .venv; }
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  step "installing the pinned requirements.txt from PyPI into .venv (Airflow and its providers: about 2-3 minutes the first time) ..."
  started=$SECONDS
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements.txt
  step "requirements installed in $((SECONDS - started)) s"
  echo "$want" > "$stamp"
fi
if [ "${D2M_NO_NATIVE:-0}" != 1 ]; then
  native_stamp=.venv/.native.sha256
  native_want=$(cat native/Cargo.toml native/Cargo.lock native/pyproject.toml native/src/*.rs | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$native_stamp" 2>/dev/null)" != "$native_want" ]; then
    command -v cargo >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/cargo" ] || {
      echo "Rust (cargo) is needed to build native/ (https://rustup.rs); or set D2M_NO_NATIVE=1 to convert in Python" >&2
      exit 1
    }
    step "building the compiled line conversion (native/, Rust, crates from crates.io; about a minute the first time) ..."
    started=$SECONDS
    PATH="$PATH:$HOME/.cargo/bin" .venv/bin/python -m pip install --quiet ./native
    step "native/ built in $((SECONDS - started)) s"
    echo "$native_want" > "$native_stamp"
  fi
fi
