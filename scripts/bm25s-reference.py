"""The reference BM25 of BENCHMARKS.md: bm25s (English stop words, PyStemmer's English stemmer,
k1 1.5, b 0.75, Lucene idf) over title + text of a BEIR-layout dataset, nDCG@10 as trec_eval.

    python3 -m venv /tmp/bm25-venv && /tmp/bm25-venv/bin/pip install bm25s PyStemmer
    /tmp/bm25-venv/bin/python scripts/bm25s-reference.py DATASET_DIR SPLIT [--dedup] [--k1 X] [--b Y]

--dedup counts each distinct query term once (quarry's scoring before [bm25] k3): bm25s scores a
query as the sum over its tokens, so a term the query repeats counts each time.
"""
import argparse, json, math

import bm25s
import numpy as np
import Stemmer

ap = argparse.ArgumentParser()
ap.add_argument("dataset")
ap.add_argument("split")
ap.add_argument("--dedup", action="store_true")
ap.add_argument("--k1", type=float, default=1.5)
ap.add_argument("--b", type=float, default=0.75)
a = ap.parse_args()

corpus = [json.loads(l) for l in open(f"{a.dataset}/corpus.jsonl")]
queries = {q["_id"]: q["text"] for q in map(json.loads, open(f"{a.dataset}/queries.jsonl"))}
qrels = {}
for i, line in enumerate(open(f"{a.dataset}/qrels/{a.split}.tsv")):
    if i:
        q, d, s = line.split("\t")
        qrels.setdefault(q, {})[d] = int(s)
stemmer = Stemmer.Stemmer("english")
ids = [c["_id"] for c in corpus]
docs = bm25s.tokenize([c.get("title", "") + " " + c["text"] for c in corpus],
                      stopwords="en", stemmer=stemmer, show_progress=False)
retriever = bm25s.BM25(k1=a.k1, b=a.b)
retriever.index(docs, show_progress=False)
qids = [q for q in qrels if q in queries]
toks = bm25s.tokenize([queries[q] for q in qids], stopwords="en", stemmer=stemmer,
                      show_progress=False)
if a.dedup:
    toks = bm25s.tokenization.Tokenized(ids=[list(dict.fromkeys(t)) for t in toks.ids],
                                        vocab=toks.vocab)
found, _ = retriever.retrieve(toks, k=100, show_progress=False)


def ndcg10(ranked, rel):
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(rel.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


scores = [ndcg10([ids[j] for j in found[i]], qrels[q]) for i, q in enumerate(qids)]
print(f"{a.split} {len(scores)} queries k1={a.k1} b={a.b} dedup={a.dedup} nDCG@10 {np.mean(scores):.4f}")
