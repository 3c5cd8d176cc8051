#!/usr/bin/env bash
# Runs the Python client's tests (clients/python) against a real `quarry serve` that the test
# suite starts itself (hash embedder: no model, no network).
#
#   scripts/python-tests.sh [PYTEST ARGS...]
#
# The binary: $QUARRY_BIN when set, else a debug build (`cargo build`, found through
# `cargo metadata`'s target_directory, which honours CARGO_TARGET_DIR).
# The venv: ${XDG_CACHE_HOME:-$HOME/.cache}/quarry/py-venv, created on first use with the
# exact versions of clients/python/requirements-test.txt. pip runs only when those pins (or
# the Python) changed since the venv was filled, so later runs are offline; the package itself
# is installed editable (again only when its folder or pyproject.toml changed).
# PYTHON picks the interpreter that makes the venv (default python3; 3.11 or newer, which the
# pinned langchain-core needs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pkg=$root/clients/python
venv=${XDG_CACHE_HOME:-$HOME/.cache}/quarry/py-venv
python=${PYTHON:-python3}

# What the venv needs, checked first so that a fresh machine says what to install.
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "python-tests: $python is missing or older than 3.11 (the pinned langchain-core needs 3.11); set PYTHON=python3.11 or newer" >&2
  exit 2
fi
if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "python-tests: $python cannot make a venv; install its venv module (Debian: apt-get install python3-venv)" >&2
  exit 2
fi
command -v sha256sum >/dev/null || {
  echo "python-tests: sha256sum is missing (coreutils)" >&2
  exit 2
}

if [[ -z "${QUARRY_BIN:-}" ]]; then
  (cd "$root" && cargo build --quiet)
  target_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps |
    "$python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  QUARRY_BIN=$target_dir/debug/quarry
fi
if [[ ! -x "$QUARRY_BIN" ]]; then
  echo "python-tests: no quarry binary at $QUARRY_BIN" >&2
  exit 2
fi
QUARRY_BIN=$(cd "$(dirname "$QUARRY_BIN")" && pwd)/$(basename "$QUARRY_BIN") # pytest runs elsewhere

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

if [[ ! -x "$venv/bin/python" ]]; then
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
fi
deps_stamp=$(
  {
    "$venv/bin/python" -c 'import sys; print(sys.version)'
    cat "$pkg/requirements-test.txt"
  } | sha256sum | cut -d' ' -f1
)
if [[ "$(cat "$venv/.quarry-deps-stamp" 2>/dev/null)" != "$deps_stamp" ]]; then
  echo "python-tests: installing clients/python/requirements-test.txt into $venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$pkg/requirements-test.txt"
  echo "$deps_stamp" >"$venv/.quarry-deps-stamp"
  rm -f "$venv/.quarry-pkg-stamp"
fi
pkg_stamp="$pkg $(hash_of "$pkg/pyproject.toml")"
if [[ "$(cat "$venv/.quarry-pkg-stamp" 2>/dev/null)" != "$pkg_stamp" ]]; then
  # No build isolation: hatchling and editables come from the pins, so this needs no network.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --no-build-isolation --no-index -e "$pkg"
  echo "$pkg_stamp" >"$venv/.quarry-pkg-stamp"
fi

cd "$pkg"
QUARRY_BIN=$QUARRY_BIN exec "$venv/bin/python" -m pytest -p no:cacheprovider "$@"
