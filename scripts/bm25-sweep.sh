#!/usr/bin/env bash
# A grid of BM25 parameters over SciFact and CISI, for choosing [bm25] defaults (BENCHMARKS.md,
# "BM25 parameters"). Each dataset is ingested once into DIR-<name> (a throwaway data dir; BM25
# only, chunks sized by the embedder's tokenizer without embedding them), then every (k1, b, k3)
# is written into the collection's stored parameters (the catalog's `collections.bm25_params`,
# which queries read; nothing else changes) and evaluated. Prints "k1 b k3 ndcg@10(cisi)
# ndcg@10(scifact) mean" lines.
#
#   scripts/bm25-sweep.sh /tmp/bm25-sweep train "1.2 1.5 2.0" "0.75 1.0" "0 8 1000"
#
# Needs sqlite3, python3 and a release build (QUARRY, default target/release/quarry);
# QUARRY_DATASETS (required) holds scifact/ and cisi/; EMBEDDER (default local)
# sizes the chunks.
set -euo pipefail
prefix=$1 split=$2 k1s=$3 bs=$4 k3s=$5
quarry=${QUARRY:-target/release/quarry}
datasets=${QUARRY_DATASETS:?set QUARRY_DATASETS to the folder holding scifact/ and cisi/}
for d in cisi scifact; do
  dir=$prefix-$d
  if [ ! -e "$dir/catalog.sqlite3" ]; then
    mkdir -p "$dir"
    echo "embedder = \"${EMBEDDER:-local}\"" > "$dir/quarry.toml"
    "$quarry" ingest --data-dir "$dir" --collection "beir-$d" --no-embed "$datasets/$d/corpus.jsonl" >&2
  fi
done
for k3 in $k3s; do for k1 in $k1s; do for b in $bs; do
  line="$k1 $b $k3"
  sum=0
  for d in cisi scifact; do
    dir=$prefix-$d
    sqlite3 "$dir/catalog.sqlite3" \
      "UPDATE collections SET bm25_params = '{\"k1\": $k1, \"b\": $b, \"k3\": $k3}'"
    n=$("$quarry" eval --data-dir "$dir" --dataset "$datasets/$d" --split "$split" --modes bm25 --json 2>/dev/null |
      python3 -c "import json, sys; print(round(json.load(sys.stdin)['modes']['bm25']['ndcg@10'], 4))")
    line="$line $n"
    sum=$(python3 -c "print($sum + $n)")
  done
  echo "$line $(python3 -c "print(round($sum / 2, 4))")"
done; done; done
