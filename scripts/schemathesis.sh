#!/usr/bin/env bash
# Property-tests the HTTP API against its own OpenAPI document with schemathesis: a real
# `quarry serve` (hash embedder: no model, no network) with authentication on, one admin API key,
# and a collection `docs` holding a few documents; schemathesis reads /openapi.json from it and
# runs every check (no server errors, response schema, status code and content type conformance,
# and the rest of `--checks all`) on every operation, twice: with generated path parameters, then
# with the collection `docs` (its own delete left out). Each run prints its counts. Not part of CI
# (.ci/run).
#
#   scripts/schemathesis.sh [SCHEMATHESIS RUN ARGS...]      e.g. --max-examples 20
#
# The binary: $QUARRY_BIN when set, else a debug build (`cargo build`, found through `cargo
# metadata`'s target_directory, which honours CARGO_TARGET_DIR).
# The venv: ${XDG_CACHE_HOME:-$HOME/.cache}/quarry/schemathesis-venv, created on first use with
# schemathesis==$SCHEMATHESIS_VERSION from PyPI; pip runs again only when the pin or the Python
# changed. PYTHON picks the interpreter that makes the venv (default python3, 3.9 or newer).
# Exit status: schemathesis's (0 when every check passed).
set -euo pipefail
SCHEMATHESIS_VERSION=4.32.5
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${XDG_CACHE_HOME:-$HOME/.cache}/quarry/schemathesis-venv
python=${PYTHON:-python3}

command -v curl >/dev/null || { echo "schemathesis.sh: curl is missing" >&2; exit 2; }
command -v sha256sum >/dev/null || { echo "schemathesis.sh: sha256sum is missing (coreutils)" >&2; exit 2; }
if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "schemathesis.sh: $python cannot make a venv; install its venv module (Debian: apt-get install python3-venv)" >&2
  exit 2
fi

if [[ -z "${QUARRY_BIN:-}" ]]; then
  (cd "$root" && cargo build --quiet)
  target_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps |
    "$python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  QUARRY_BIN=$target_dir/debug/quarry
fi
[[ -x "$QUARRY_BIN" ]] || { echo "schemathesis.sh: no quarry binary at $QUARRY_BIN" >&2; exit 2; }

[[ -x "$venv/bin/python" ]] || { mkdir -p "$(dirname "$venv")"; "$python" -m venv "$venv"; }
stamp=$({ "$venv/bin/python" -c 'import sys; print(sys.version)'; echo "$SCHEMATHESIS_VERSION"; } | sha256sum | cut -d' ' -f1)
if [[ "$(cat "$venv/.quarry-deps-stamp" 2>/dev/null)" != "$stamp" ]]; then
  echo "schemathesis.sh: installing schemathesis==$SCHEMATHESIS_VERSION into $venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
  echo "$stamp" >"$venv/.quarry-deps-stamp"
fi

# The server: its data directory (and the snapshots POST /v1/snapshots writes beside it) in one
# temporary folder, removed on exit with the server.
work=$(mktemp -d "${TMPDIR:-/tmp}/quarry-schemathesis.XXXXXX")
server_pid=
cleanup() {
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
token="admin-$(head -c 24 /dev/urandom | sha256sum | cut -c1-40)"
mkdir -p "$work/data"
cat >"$work/data/quarry.toml" <<TOML
embedder = "hash"

[[auth.api_keys]]
key_sha256 = "$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)"
user = "schemathesis"
role = "admin"
TOML
# No QUARRY_* variable of the caller reaches the server (quarry reads them as settings).
env $(env | grep -o '^QUARRY_[A-Za-z0-9_]*' | sed 's/^/-u /') QUARRY_LOG="warn,quarry::cmd::serve=info" \
  "$QUARRY_BIN" serve --data-dir "$work/data" --addr 127.0.0.1:0 </dev/null 2>"$work/server.log" &
server_pid=$!
url=
for _ in $(seq 600); do
  url=$(grep -o 'listening on http://[^ ]*' "$work/server.log" | head -1 | cut -d' ' -f3 || true)
  [[ -n "$url" ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
[[ -n "$url" ]] || { echo "schemathesis.sh: quarry serve did not start:" >&2; cat "$work/server.log" >&2; exit 2; }
for _ in $(seq 600); do
  curl -sf "$url/readyz" >/dev/null && break
  sleep 0.1
done
auth=(-H "Authorization: Bearer $token")
curl -sf "${auth[@]}" -X PUT "$url/v1/collections/docs" -d '{}' >/dev/null
curl -sf "${auth[@]}" "$url/v1/collections/docs/documents" -d '{"documents": [
  {"_id": "a", "title": "Hybrid retrieval", "text": "BM25 and vectors fused by reciprocal rank fusion.", "metadata": {"team": "search", "year": 2024}},
  {"_id": "b", "title": "Restart procedure", "text": "Drain the node, then restart it.", "acl": ["group:ops"], "metadata": {"team": "ops", "year": 2023}},
  {"_id": "notes/c", "title": "Compaction", "text": "Segments merge in the background; deletes are applied then."}
]}' >/dev/null
echo "schemathesis.sh: quarry serve on $url (auth on, admin key), collection docs with 3 documents" >&2

# Two runs: every operation with generated names (most collections do not exist: 404s and 400s),
# then every operation on the collection `docs` (so queries, documents and eval reach the
# engine), without the delete of the collection itself.
cat >"$work/pinned.toml" <<TOML
[parameters]
"path.collection" = "docs"
TOML
common=(--url "$url" -H "Authorization: Bearer $token" --checks all --no-color
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-25}" --seed "${SCHEMATHESIS_SEED:-1}")
# schemathesis and hypothesis keep their caches (.schemathesis/, .hypothesis/) in the working
# directory: the temporary folder, not the work tree.
cd "$work"
status=0
echo "schemathesis.sh: run 1 of 2: every operation, generated names" >&2
"$venv/bin/st" run "$url/openapi.json" "${common[@]}" "$@" || status=$?
echo "schemathesis.sh: run 2 of 2: every operation on the collection docs" >&2
"$venv/bin/st" --config-file "$work/pinned.toml" run "$url/openapi.json" "${common[@]}" \
  --exclude-operation-id delete_collection "$@" || status=$?
if grep -q 'panicked' "$work/server.log"; then
  echo "schemathesis.sh: the server log has panics:" >&2
  grep -A3 'panicked' "$work/server.log" >&2
fi
exit "$status"
