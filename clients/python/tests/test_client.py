"""The sync client against a real server: documents, queries with every option, batches,
collections, jobs, versions, eval runs and errors."""

from __future__ import annotations

import uuid

import pytest

from quarry_client import (
    BadRequestError,
    Collection,
    CollectionNotFoundError,
    ConflictError,
    DocumentNotFoundError,
    Hit,
    NotFoundError,
    QueryResponse,
    WriteSummary,
)

from conftest import CORPUS, DOCS, LONG_DOC, MD


def fresh(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_health_and_ready(client):
    assert client.health() == {"status": "ok"}
    assert client.ready() == {"status": "ready"}


# -- documents -------------------------------------------------------------------------------


def test_put_get_list_delete_documents(client):
    c = fresh()
    ids = ["a/b/c.md", "q?x #1%", "plain", "ünï"]
    summary = client.put_documents(
        c, [{"_id": i, "title": f"T {i}", "text": f"text of {i}", "metadata": {"n": n}} for n, i in enumerate(ids)]
    )
    assert isinstance(summary, WriteSummary)
    assert (summary.added, summary.updated, summary.unchanged, summary.skipped) == (4, 0, 0, {})
    again = client.put_documents(c, [{"_id": "plain", "title": "T plain", "text": "text of plain", "metadata": {"n": 2}}])
    assert again.unchanged == 1

    for n, i in enumerate(ids):
        d = client.get_document(c, i)
        assert (d.id, d.text, d.title, d.metadata) == (i, f"text of {i}", f"T {i}", {"n": n})
        assert d.source == "api" and d.chunks >= 1 and len(d.content_hash) == 64

    page = client.list_documents(c, limit=3)
    assert [d.id for d in page.documents] == sorted(ids)[:3]
    assert page.documents[0].text is None
    assert page.next_after == sorted(ids)[2]
    rest = client.list_documents(c, after=page.next_after, limit=3)
    assert [d.id for d in rest.documents] == sorted(ids)[3:] and rest.next_after is None
    assert [d.id for d in client.iter_documents(c, page_size=1)] == sorted(ids)

    assert client.delete_document(c, "a/b/c.md")["deleted"] == "a/b/c.md"
    with pytest.raises(DocumentNotFoundError) as e:
        client.get_document(c, "a/b/c.md")
    assert (e.value.status, e.value.code) == (404, "document_not_found")
    assert e.value.request_id
    with pytest.raises(DocumentNotFoundError):
        client.delete_document(c, "a/b/c.md")
    forgotten = client.delete_document(c, "plain", forget=True)
    assert forgotten["doc_id"] == "plain" and forgotten["catalog_scrubbed"] in (True, False)
    client.delete_collection(c)


def test_put_documents_without_waiting(client):
    c = fresh()
    task = client.put_documents(c, [{"_id": "x", "text": "later"}], wait=False)
    assert task.kind == "upsert" and task.collection == c and task.task_id
    done = client.wait_task(task.task_id, timeout=30)
    assert done.state == "succeeded" and done.summary.added == 1
    with pytest.raises(NotFoundError) as e:
        client.get_task("no-such-task")
    assert e.value.code == "task_not_found"
    client.delete_collection(c)


def test_bad_document_batch_is_a_400(client):
    with pytest.raises(BadRequestError) as e:
        client.put_documents(fresh(), [{"title": "no id", "text": "x"}])
    assert e.value.code == "invalid_request"
    assert "documents[0]" in e.value.message


# -- queries ---------------------------------------------------------------------------------


def test_query_typed_result(client):
    r = client.query(DOCS, "write-ahead log checkpoint", top_k=3)
    assert isinstance(r, QueryResponse) and len(r) == 3
    assert all(isinstance(h, Hit) for h in r)
    top = r.results[0]
    assert top.doc_id == "guides/wal.md"
    assert top.title == "Write-ahead logging" and top.source == "api"
    assert top.metadata == CORPUS[0]["metadata"]
    assert top.offsets[0] == 0 and top.offsets[1] > 0
    assert len(top.chunk_id) == 64
    assert r.embedding_version.startswith("hash-") and r.degraded is False and r.took_ms > 0
    assert "bm25" in top.scores or "vector" in top.scores


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "vector"])
def test_modes(client, mode):
    r = client.query(DOCS, "reciprocal rank fusion retrieval", mode=mode, top_k=2)
    assert len(r) == 2
    if mode == "bm25":
        assert r.results[0].doc_id == "guides/rrf.md"
        assert set(r.results[0].scores) <= {"bm25", "bm25_rank"}
    if mode == "vector":
        assert set(r.results[0].scores) <= {"vector", "vector_rank"}


def test_fusion_options(client):
    rrf = client.query(DOCS, "BM25 retrieval", rrf_k=60, top_k=5)
    assert all(h.score <= 2 / 61 + 1e-6 for h in rrf)
    same = client.query(DOCS, "BM25 retrieval", fusion={"method": "rrf", "k": 60}, top_k=5)
    assert [h.chunk_id for h in same] == [h.chunk_id for h in rrf]
    bm25_only = client.query(DOCS, "BM25 retrieval", alpha=0.0, top_k=3)
    assert bm25_only.results[0].doc_id == "guides/bm25.md"
    with pytest.raises(BadRequestError) as e:
        client.query(DOCS, "x", alpha=1.5)
    assert e.value.code == "invalid_request" and "alpha" in e.value.message
    with pytest.raises(ValueError):
        client.query(DOCS, "x", alpha=0.5, rrf_k=60)


def test_filters(client):
    r = client.query(DOCS, "retrieval", filter={"field": "team", "eq": "ops"}, top_k=20)
    assert r.results and {h.doc_id for h in r} <= {"ops/restart.md", "ops/compaction.md", "manual.md"}
    r = client.query(
        DOCS,
        "retrieval",
        top_k=20,
        filter={"and": [{"field": "tags", "in": ["retrieval"]}, {"field": "year", "gte": 2024}]},
    )
    assert {h.doc_id for h in r} == {"guides/rrf.md", "guides/hnsw.md"}
    r = client.query(DOCS, "retrieval", top_k=20, filter={"not": {"field": "doc_id", "eq": "guides/rrf.md"}})
    assert "guides/rrf.md" not in {h.doc_id for h in r}


def test_bad_filter_is_a_400_with_the_servers_code(client):
    with pytest.raises(BadRequestError) as e:
        client.query(DOCS, "x", filter={"field": "yaer", "eq": 2023})
    assert e.value.status == 400
    assert e.value.code == "invalid_request"
    assert 'unknown field `yaer`' in e.value.message or "unknown field" in e.value.message
    with pytest.raises(BadRequestError) as e:
        client.query(DOCS, "x", filter={"field": "year", "eq": 1, "bogus": 2})
    assert e.value.code in ("invalid_request", "invalid_json")


def test_missing_collection_is_a_404(client):
    with pytest.raises(CollectionNotFoundError) as e:
        client.query("no-such-collection", "x")
    assert (e.value.status, e.value.code) == (404, "collection_not_found")
    assert "no-such-collection" in e.value.message
    with pytest.raises(CollectionNotFoundError):
        client.get_collection("no-such-collection")


def test_highlights_citation_explain(client):
    r = client.query(DOCS, "checkpoint crash", highlight=True, citation=True, explain=True, top_k=3)
    top = r.results[0]
    assert top.doc_id == "guides/wal.md"
    assert top.highlights, top
    words = {top.text.encode()[a:b].decode().lower() for a, b in top.highlights}
    assert words & {"checkpoint", "crash"}
    assert "**" in top.highlighted()
    assert top.citation.doc_id == "guides/wal.md" and top.citation.offsets == top.offsets
    assert top.citation.title == "Write-ahead logging"
    assert top.explain and set(top.explain) <= {"bm25", "vector"}
    assert r.timings and "bm25_ms" in r.timings


def test_feedback_and_adaptive_fusion(client):
    plain = client.query(DOCS, "checkpoint crash", explain=True, top_k=3, feedback=False)
    assert plain.expansion is None
    fb = {"fb_docs": 2, "fb_terms": 5, "orig_weight": 0.7}
    r = client.query(DOCS, "checkpoint crash", explain=True, top_k=3, feedback=fb)
    assert r.expansion, r.raw
    added = [t for t in r.expansion if t["added"]]
    assert added and all(t["weight"] > 0 for t in r.expansion)
    kept = {t["term"] for t in r.expansion if not t["added"]}
    assert kept, r.expansion  # the query's own words stay in the expanded query
    with pytest.raises(BadRequestError) as e:
        client.query(DOCS, "checkpoint", feedback={"fb_docs": 101})
    assert "fb_docs" in e.value.message
    a = client.query(DOCS, "checkpoint crash", explain=True, top_k=3, fusion={"method": "adaptive"})
    assert a.results and all(
        0.0 <= part.get("weight", 0.0) <= 1.0 for h in a.results for part in (h.explain or {}).values()
    )


def test_heading_path_of_markdown_ingested_by_the_cli(server, client):
    r = client.query(MD, "upgrade step replaces the binary", citation=True, top_k=1)
    hit = r.results[0]
    assert hit.doc_id == "manual.md"
    assert hit.source == str(server.md_folder / "manual.md")
    assert hit.citation.heading_path == ["Manual", "Upgrades"]
    assert hit.citation.source == hit.source
    faq = client.query(MD, "restore snapshot", citation=True, top_k=1, filter={"field": "heading_path", "eq": "FAQ"})
    assert faq.results[0].doc_id == "faq/restore.md"
    assert faq.results[0].citation.heading_path == ["FAQ"]  # the section the chunk starts in


def test_expansion(client):
    r = client.query(DOCS, "upgrade step replaces the binary", expand=1, top_k=1)
    hit = r.results[0]
    assert hit.doc_id == "manual.md"
    assert hit.passage is not None
    assert hit.passage.offsets[0] <= hit.offsets[0] and hit.passage.offsets[1] >= hit.offsets[1]
    assert hit.text in hit.passage.text or len(hit.passage.text) > len(hit.text)
    long_text = LONG_DOC["text"].encode()
    assert long_text[hit.offsets[0] : hit.offsets[1]].decode() == hit.text


def test_group_by_paging_min_score_include_facets(client):
    by_doc = client.query(DOCS, "backup step upgrade step", group_by="document", top_k=5)
    ids = [h.doc_id for h in by_doc]
    assert len(ids) == len(set(ids))

    full = client.query(DOCS, "retrieval", mode="bm25", top_k=4)
    page2 = client.query(DOCS, "retrieval", mode="bm25", top_k=2, offset=2)
    assert [h.chunk_id for h in page2] == [h.chunk_id for h in full.results[2:4]]

    cut = full.results[1].score
    above = client.query(DOCS, "retrieval", mode="bm25", top_k=10, min_score=cut)
    assert above.results and all(h.score >= cut for h in above)

    inc = client.query(DOCS, "retrieval", top_k=3, include=["year"])
    assert all(set(h.metadata) <= {"year"} for h in inc)

    fac = client.query(DOCS, "retrieval", top_k=1, facets=["team"])
    counts = {f.value: f.count for f in fac.facets["team"]}
    assert counts.get("search", 0) >= 3


def test_diversify_and_vector(client):
    d = client.query(DOCS, "backup step", diversify=0.3, top_k=3)
    assert len(d) == 3
    [vec] = client.embed(["backup step"], model="hash")
    r = client.query(DOCS, mode="vector", vector=vec, top_k=2)
    assert len(r) == 2 and r.results[0].doc_id == "manual.md"
    assert r.embed_ms is None  # the query's own vector: nothing embedded
    with pytest.raises(BadRequestError) as e:
        client.query(DOCS, mode="vector", vector=[0.1, 0.2], top_k=2)
    assert "vector" in e.value.message


def test_rerank_is_sent(client):
    # No [reranker] is configured: the server refuses the option and names it.
    with pytest.raises(BadRequestError) as e:
        client.query(DOCS, "x", rerank=5)
    assert e.value.code == "invalid_request" and "rerank" in e.value.message


def test_batch_query(client):
    answers = client.query_batch(
        DOCS, ["write-ahead log", {"query": "compaction", "mode": "bm25", "top_k": 1}]
    )
    assert len(answers) == 2 and all(isinstance(a, QueryResponse) for a in answers)
    assert answers[1].results[0].doc_id == "ops/compaction.md" and len(answers[1]) == 1
    with pytest.raises(BadRequestError) as e:
        client.query_batch(DOCS, ["ok", {"query": "bad", "top_k": 0}])
    assert e.value.message.startswith("queries[1]")
    with pytest.raises(BadRequestError) as e:
        client.query_batch(DOCS, [{"query": "x", "no_such_option": 1}])
    assert e.value.code == "invalid_json"


def test_embeddings(client):
    vectors = client.embed(["reciprocal rank fusion", "write-ahead log"], model="hash")
    assert len(vectors) == 2 and len(vectors[0]) == 384
    with pytest.raises(NotFoundError) as e:
        client.embed("x", model="no-such-model")
    assert e.value.code == "model_not_found"


# -- collections -----------------------------------------------------------------------------


def test_collections(client):
    c = fresh("col")
    created = client.create_collection(c, chunk={"max_tokens": 32, "overlap": 8})
    assert isinstance(created, Collection) and created.name == c and created.documents == 0
    assert created.chunk_options["max_tokens"] == 32
    assert client.create_collection(c, chunk={"max_tokens": 32, "overlap": 8}).name == c
    with pytest.raises(ConflictError) as e:
        client.create_collection(c, chunk={"max_tokens": 48, "overlap": 8})
    assert (e.value.status, e.value.code) == (409, "conflict")
    assert c in {x.name for x in client.list_collections()}
    docs = client.get_collection(DOCS)
    assert docs.documents == len(CORPUS) + 1 and docs.embedder == "hash"
    gone = client.delete_collection(c)
    assert gone["name"] == c
    with pytest.raises(CollectionNotFoundError):
        client.delete_collection(c)
    with pytest.raises(BadRequestError):
        client.create_collection("bad name!")


# -- versions, jobs, eval ----------------------------------------------------------------------


def test_versions_and_jobs(client):
    c = fresh("job")
    client.put_documents(c, CORPUS)
    versions = client.list_versions(c)
    assert len(versions) == 1 and versions[0].active and versions[0].embedder == "hash"
    assert versions[0].id == client.get_collection(c).active_embedding_version

    job = client.reindex(c, rebuild_index=True)
    assert job.collection == c and job.kind == "requantize" and job.id
    done = client.wait_job(job.id, timeout=60)
    assert done.state == "succeeded", done
    assert job.id in {j.id for j in client.list_jobs()}
    assert client.get_job(job.id).state == "succeeded"
    with pytest.raises(BadRequestError):
        client.reindex(c, embedder="no-such-embedder")
    with pytest.raises(NotFoundError):
        client.get_job("j999999")
    # Cancelling: a queued or running job is cancelled; one that already ended is not.
    job2 = client.reindex(c, quantization="none")
    cancelled = client.cancel_job(job2.id)
    assert cancelled.id == job2.id
    assert client.wait_job(job2.id, timeout=60).state in ("cancelled", "succeeded")
    active = client.list_versions(c)[0]
    assert client.activate_version(c, active.id).id == active.id
    client.delete_collection(c)


def test_eval_runs(client):
    c = fresh("eval")
    client.put_documents(c, CORPUS)
    client.put_golden(
        c,
        "smoke",
        [
            {"id": "q1", "query": "write-ahead log checkpoint", "relevant": {"guides/wal.md": 1}},
            {"id": "q2", "query": "compaction segments", "relevant": {"ops/compaction.md": 1}},
        ],
    )
    assert [g.name for g in client.list_golden(c)] == ["smoke"]
    r1 = client.run_eval(c, "smoke", modes=["bm25"], top_k=10)
    assert r1.id and r1.golden == "smoke" and set(r1.metrics) == {"bm25"}
    assert r1.ndcg10("bm25") == pytest.approx(1.0)
    r2 = client.run_eval(c, "smoke", modes=["bm25", "hybrid"], fusion={"method": "rrf", "k": 60})
    runs = client.list_eval_runs(c)
    assert {r.id for r in runs} == {r1.id, r2.id}
    assert all(r.golden == "smoke" for r in runs)
    cmp = client.compare_eval_runs(c, r1.id, r2.id, mode="bm25")
    assert isinstance(cmp, dict) and cmp
    with pytest.raises(NotFoundError):
        client.compare_eval_runs(c, r1.id, "r-nope")
    client.delete_golden(c, "smoke")
    assert client.list_golden(c) == []
    client.delete_collection(c)


def test_snapshot(server, client):
    import shutil
    from pathlib import Path

    snap = client.create_snapshot("py-test")
    try:
        assert snap["name"] == "py-test" and snap["files"] > 0 and Path(snap["path"]).is_dir()
        with pytest.raises(ConflictError):
            client.create_snapshot("py-test")
    finally:
        shutil.rmtree(Path(snap["path"]).parent, ignore_errors=True)
