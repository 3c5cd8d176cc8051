#!/usr/bin/env bash
# The README's first command: build quarry, ingest fixtures/sample, serve it over HTTP, ask a
# question over HTTP, print the ranked passages, stop the server.
#   ./scripts/demo.sh ["your question"]
set -euo pipefail
cd "$(dirname "$0")/.."
question="${1:-how does quarry keep an index consistent after a crash?}"
cargo build --release
# Wherever cargo put it: CARGO_TARGET_DIR, build.target-dir of a cargo config, else ./target.
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -E 's/.*"target_directory":"([^"]*)".*/\1/')
bin="$target_dir/release/quarry"
[ -x "$bin" ] || { echo "demo: no quarry binary at $bin after the build" >&2; exit 1; }
data=$(mktemp -d "${TMPDIR:-/tmp}/quarry-demo.XXXXXX")
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data"' EXIT

"$bin" --data-dir "$data" ingest fixtures/sample
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 7878)
"$bin" --data-dir "$data" serve --addr "127.0.0.1:$port" 2>"$data/serve.log" &
server=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
echo
echo "query over HTTP: $question"
"$bin" query --server "http://127.0.0.1:$port" --top-k 3 "$question"
