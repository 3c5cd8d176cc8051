#!/usr/bin/env bash
# The Ray path of docs/cluster.md, end to end, on this machine (not in CI: it installs Ray from
# PyPI). A generated corpus of $CHUNKS one-chunk documents is ingested without vectors, exported
# with `quarry export chunks`, embedded twice — by `quarry embed` here and by
# examples/ray_embed.py as Ray tasks on a Ray instance started on this machine — and the two sets of vector files must be equal
# within 1e-6. The Ray vectors are then loaded with `quarry ingest`, after which nothing is left
# to export, and vector queries must answer as a collection embedded by a normal ingest.
#
#   scripts/ray-embed-test.sh                       # MiniLM (`local`), 3000 chunks
#   EMBEDDER=hash CHUNKS=5000 scripts/ray-embed-test.sh
#
# Variables: EMBEDDER (local), CHUNKS (3000), ROWS_PER_FILE (500), RAY_CPUS (2), QUARRY_BIN (default: build
# target/debug/quarry with cargo), RAY_VENV (default: $XDG_CACHE_HOME/quarry/ray-venv, made with
# `python3 -m venv` and `pip install ray pyarrow` the first time), KEEP=1 keeps the work folder.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
embedder="${EMBEDDER:-local}"
chunks="${CHUNKS:-3000}"
rows_per_file="${ROWS_PER_FILE:-500}"
venv="${RAY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/quarry/ray-venv}"

if [[ -z "${QUARRY_BIN:-}" ]]; then
  (cd "$here" && cargo build --quiet --bin quarry)
  QUARRY_BIN="${CARGO_TARGET_DIR:-$here/target}/debug/quarry"
fi
quarry="$(cd "$(dirname "$QUARRY_BIN")" && pwd)/$(basename "$QUARRY_BIN")"

if ! "$venv/bin/python" -c 'import ray, pyarrow' 2>/dev/null; then
  echo "installing ray and pyarrow into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet ray pyarrow
fi
py="$venv/bin/python"

work="$(mktemp -d)"
if [[ "${KEEP:-}" != 1 ]]; then trap 'rm -rf "$work"' EXIT; else echo "work folder: $work"; fi
# Only the settings of this script reach quarry.
while IFS='=' read -r name _; do [[ "$name" == QUARRY_* && "$name" != QUARRY_MODEL_DIR ]] && unset "$name"; done < <(env)
export QUARRY_EMBEDDER="$embedder" QUARRY_CHUNK__MAX_TOKENS=4096

"$py" - "$work/corpus.jsonl" "$chunks" <<'EOF'
import json, random, sys
path, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
words = ("river stone lamp orbit cedar violin harbor quartz meadow signal copper lantern glacier "
         "pepper canyon ember falcon tundra marble saddle thunder willow cobalt prism").split()
with open(path, "w") as f:
    for i in range(n):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(12, 40)))
        f.write(json.dumps({"_id": f"d{i}", "title": f"Note {i}", "text": text + "."}) + "\n")
EOF

t() { date +%s.%N; }
elapsed() { "$py" -c "print(f'{$2 - $1:.1f}')"; }

"$quarry" --data-dir "$work/data" ingest --no-embed --json "$work/corpus.jsonl" > /dev/null
"$quarry" --data-dir "$work/data" export chunks --out "$work/chunks" --rows-per-file "$rows_per_file" --json > "$work/export.json"
exported=$("$py" -c "import json; d=json.load(open('$work/export.json')); print(d['chunks'], len(d['files']))")
echo "exported: $exported (chunks, files)"

s=$(t)
"$quarry" embed --in "$work/chunks" --out "$work/local-vectors" --json > "$work/local.json"
local_s=$(elapsed "$s" "$(t)")
s=$(t)
"$py" "$here/examples/ray_embed.py" --local-cpus "${RAY_CPUS:-2}" --in "$work/chunks" --out "$work/ray-vectors" --quarry "$quarry" > "$work/ray.json"
ray_s=$(elapsed "$s" "$(t)")
echo "quarry embed: ${local_s}s; Ray (${RAY_CPUS:-2} CPUs, this machine): ${ray_s}s: $(tail -1 "$work/ray.json")"

"$py" - "$work/local-vectors" "$work/ray-vectors" "$chunks" <<'EOF'
import os, sys
import pyarrow.parquet as pq
a, b, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = sorted(os.listdir(a))
assert names == sorted(os.listdir(b)), (names, sorted(os.listdir(b)))
rows, worst = 0, 0.0
for name in names:
    ta, tb = pq.read_table(os.path.join(a, name)), pq.read_table(os.path.join(b, name))
    assert ta.column("id").to_pylist() == tb.column("id").to_pylist(), name
    assert ta.schema.metadata[b"embedder_spec"] == tb.schema.metadata[b"embedder_spec"], name
    for va, vb in zip(ta.column("vector").to_pylist(), tb.column("vector").to_pylist()):
        assert len(va) == len(vb), name
        worst = max(worst, max(abs(x - y) for x, y in zip(va, vb)))
    rows += ta.num_rows
assert rows == n, (rows, n)
assert worst <= 1e-6, worst
print(f"equal: {rows} vectors in {len(names)} files, max |local - ray| = {worst:.2e}")
EOF

loaded=$("$quarry" --data-dir "$work/data" ingest --json "$work"/ray-vectors/*.parquet |
  "$py" -c "import json,sys; v=json.load(sys.stdin)['vectors']; print(v['vectors_loaded'], sum(v['skipped'].values()))")
left=$("$quarry" --data-dir "$work/data" export chunks --out "$work/left" --json |
  "$py" -c "import json,sys; print(json.load(sys.stdin)['chunks'])")
echo "loaded back: $loaded (vectors, skipped); left to export: $left"
[[ "$loaded" == "$chunks 0" && "$left" == 0 ]]

# The engine's own embedding of the same corpus answers vector queries the same way.
s=$(t)
"$quarry" --data-dir "$work/normal" ingest --json "$work/corpus.jsonl" > /dev/null
normal_s=$(elapsed "$s" "$(t)")
for q in "river stone" "violin harbor quartz" "copper lantern in the canyon" "thunder willow"; do
  for d in data normal; do
    "$quarry" --data-dir "$work/$d" query "$q" --mode vector --top-k 10 --json > "$work/q-$d.json"
  done
  "$py" - "$work/q-data.json" "$work/q-normal.json" "$q" <<'EOF'
import json, sys
a, b = (json.load(open(p))["results"] for p in sys.argv[1:3])
# the same scores within 1e-6 (a loaded vector is normalised once more); equal scores may swap
assert len(a) == len(b) and all(abs(x["score"] - y["score"]) <= 1e-6 for x, y in zip(a, b)), sys.argv[3]
sb = {h["chunk_id"]: h["score"] for h in b}
assert all(abs(h["score"] - sb[h["chunk_id"]]) <= 1e-6 for h in a if h["chunk_id"] in sb), sys.argv[3]
EOF
done
echo "normal ingest (engine embedding): ${normal_s}s; vector queries equal"
echo "ok: $embedder, $chunks chunks"
