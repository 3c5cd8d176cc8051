"""Granularity (docs/evaluation.md, "Defaults chosen on two collections"): does a document-level
vector help beside quarry's chunk-level ones? Reads quarry's own data, nothing recomputed:

- the chunk vectors of a collection from its catalog (`embeddings` by `chunk_hash`, joined with
  `doc_chunks`), active embedding version;
- each document's own vector: the first chunk of a second collection of the same corpus chunked
  at 256 tokens (`--own COLLECTION`), or a Parquet file of document vectors (`id`, `vector`, as
  SciFact's `minilm-corpus.parquet`);
- the query vectors: the dataset's `queries.jsonl` ingested as a corpus of one chunk per query
  into `--queries-collection` of `--queries-data-dir` (`QUARRY_CHUNK__MAX_TOKENS=512
  QUARRY_CHUNK__OVERLAP=0 QUARRY_CHUNK__CONTEXT_CHARS=0 quarry ingest --data-dir Q --collection
  q-NAME DATASET/queries.jsonl`; MiniLM has no query prefix, so a query embedded as a document is
  the query's vector);
- BM25 by document from `quarry eval --modes bm25 --out RUNS` (`RUNS/bm25.trec`).

It ranks documents by each vector signal (best chunk, mean of the best 3 chunks, mean of the
chunk vectors, the document's own vector) and by their weighted fusion with BM25 at the document
level (scores over each list's best, alpha 0.6 on the vector side, a third signal taking beta of
it), and prints nDCG@10 of each as one JSON object.

    python3 -m venv /tmp/gran-venv && /tmp/gran-venv/bin/pip install numpy pyarrow
    /tmp/gran-venv/bin/python scripts/granularity.py --data-dir D --collection C --own C256 \\
        --queries-data-dir Q --queries-collection q-cisi --dataset DATASET --runs RUNS --split train
"""

import argparse
import collections
import json
import math
import sqlite3

import numpy as np

ALPHA = 0.6
BETAS = [0.1, 0.2, 0.3, 0.4, 0.5]


def catalog(data_dir):
    return sqlite3.connect(f"file:{data_dir}/catalog.sqlite3?mode=ro", uri=True)


def unit(v):
    return v / np.linalg.norm(v)


def chunk_vectors(db, collection, first_only=False):
    """{doc_id: [unit vectors of its chunks]} of the collection's active embedding version."""
    (fingerprint,) = db.execute(
        "select fingerprint from embedding_versions where collection = ? and state = 'active'",
        (collection,),
    ).fetchone()
    rows = db.execute(
        "select d.doc_id, d.ord, e.vector from doc_chunks d left join embeddings e"
        " on e.chunk_hash = d.chunk_hash and e.fingerprint = ? where d.collection = ?"
        " order by d.doc_id, d.ord",
        (fingerprint, collection),
    )
    out = collections.defaultdict(list)
    for doc, ord_, blob in rows:
        if blob is None:
            raise SystemExit(f"{collection}: chunk {ord_} of {doc} has no vector; embed it first")
        if first_only and ord_ != 0:
            continue
        out[doc].append(unit(np.frombuffer(blob, dtype="<f4").astype(np.float64)))
    return out


def own_vectors(db, own):
    if own.endswith(".parquet"):
        import pyarrow.parquet as pq

        t = pq.read_table(own).to_pydict()
        return {i: unit(np.array(v, dtype=np.float64)) for i, v in zip(t["id"], t["vector"])}
    return {d: vs[0] for d, vs in chunk_vectors(db, own, first_only=True).items()}


def read_qrels(dataset, split):
    rel = collections.defaultdict(dict)
    for i, line in enumerate(open(f"{dataset}/qrels/{split}.tsv")):
        p = line.split()
        if i == 0 and not p[-1].isdigit():
            continue
        if int(p[2]) > 0:
            rel[p[0]][p[1]] = int(p[2])
    return rel


def read_run(path):
    run = collections.defaultdict(dict)
    for line in open(path):
        q, _, d, _, score, _ = line.split()
        run[q][d] = float(score)
    return run


def ndcg10(ranked, rel):
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(rel.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def over_best(scores):
    best = max(scores.values(), default=0.0)
    return {d: (s / best if best > 0 else 0.0) for d, s in scores.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ["data-dir", "collection", "own", "queries-data-dir", "queries-collection",
                 "dataset", "runs", "split"]:
        ap.add_argument(f"--{name}", required=True)
    a = ap.parse_args()

    db = catalog(a.data_dir)
    chunks = chunk_vectors(db, a.collection)
    docs = sorted(chunks)
    if not docs:
        raise SystemExit(f"collection {a.collection} has no vectors in {a.data_dir}")
    own = own_vectors(db, a.own)
    queries = chunk_vectors(catalog(a.queries_data_dir), a.queries_collection)
    rel = read_qrels(a.dataset, a.split)
    bm25 = read_run(f"{a.runs}/bm25.trec")
    for what, have in [("vector", queries), ("BM25 run", bm25)]:
        missing = [q for q in rel if q not in have]
        if missing:
            raise SystemExit(f"{len(missing)} judged queries have no {what}, e.g. {missing[0]}")
    split = [q for q in rel if len(queries[q]) != 1]
    if split:
        raise SystemExit(f"query {split[0]} is {len(queries[split[0]])} chunks; ingest the"
                         " queries with QUARRY_CHUNK__MAX_TOKENS=512")

    rows, owner = [], []
    for i, d in enumerate(docs):
        rows += chunks[d]
        owner += [i] * len(chunks[d])
    matrix, owner = np.array(rows), np.array(owner)
    means = np.array([unit(np.mean(chunks[d], axis=0)) for d in docs])
    no_own = [d for d in docs if d not in own]
    if no_own:
        raise SystemExit(f"{len(no_own)} documents have no own vector in {a.own}, e.g. {no_own[0]}")
    owns = np.array([own[d] for d in docs])

    signals = collections.defaultdict(dict)  # signal -> query -> {doc: score}, its best 100
    for q in rel:
        x = queries[q][0]
        cos = matrix @ x
        best = np.full(len(docs), -1.0)
        np.maximum.at(best, owner, cos)
        top3_sum, top3_n = np.zeros(len(docs)), np.zeros(len(docs))
        for j in np.lexsort((-cos, owner)):  # by document, best chunk first
            if top3_n[owner[j]] < 3:
                top3_sum[owner[j]] += cos[j]
                top3_n[owner[j]] += 1

        def best100(scores):
            return {docs[i]: max(float(scores[i]), 0.0) for i in np.argsort(-scores)[:100]}

        signals["best chunk"][q] = best100(best)
        signals["best 3 chunks"][q] = best100(top3_sum / np.maximum(top3_n, 1))
        signals["mean of chunk vectors"][q] = best100(means @ x)
        signals["own vector"][q] = best100(owns @ x)
        signals["bm25"][q] = bm25.get(q, {})

    def fused(q, parts):
        out = collections.defaultdict(float)
        for name, weight in parts:
            for d, s in over_best(signals[name][q]).items():
                out[d] += weight * s
        return out

    def mean_ndcg(scorer):
        total = 0.0
        for q in rel:
            s = scorer(q)
            total += ndcg10(sorted(s, key=lambda d: (-s[d], d)), rel[q])
        return total / len(rel)

    result = {}
    for name in ["bm25", "best chunk", "best 3 chunks", "mean of chunk vectors", "own vector"]:
        result[name] = mean_ndcg(lambda q, n=name: signals[n][q])
    for name in ["best chunk", "best 3 chunks"]:
        result[f"hybrid, {name}"] = mean_ndcg(
            lambda q, n=name: fused(q, [("bm25", 1 - ALPHA), (n, ALPHA)]))
    for third in ["own vector", "mean of chunk vectors"]:
        for beta in BETAS:
            result[f"hybrid + {third}, beta {beta}"] = mean_ndcg(
                lambda q, t=third, b=beta: fused(
                    q, [("bm25", 1 - ALPHA), ("best chunk", ALPHA * (1 - b)), (t, ALPHA * b)]))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
