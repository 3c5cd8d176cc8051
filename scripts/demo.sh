#!/usr/bin/env bash
# The README's first command: build quarry, ingest fixtures/sample, serve it over HTTP, ask a
# question over HTTP, print the ranked passages, stop the server.
#   ./scripts/demo.sh ["your question"]
set -euo pipefail
cd "$(dirname "$0")/.."
question="${1:-how does quarry keep an index consistent after a crash?}"
cargo build --release
bin=target/release/quarry
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
