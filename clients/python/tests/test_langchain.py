"""LangChain: the standard retriever tests of langchain-tests, the vector store, and the
indexing API with cleanup="full" leaving exactly the source set in quarry."""

from __future__ import annotations

import uuid
from typing import Any, Dict, Type

import pytest
from langchain_core.documents import Document
from langchain_core.indexing import InMemoryRecordManager, index
from langchain_tests.integration_tests import RetrieversIntegrationTests, VectorStoreIntegrationTests

from quarry_client import QuarryClient
from quarry_client.langchain import QuarryRetriever, QuarryVectorStore

from conftest import DOCS


class TestQuarryRetrieverStandard(RetrieversIntegrationTests):
    """langchain-tests' RetrieversIntegrationTests against the `docs` collection."""

    url: str = ""

    @pytest.fixture(autouse=True)
    def _server(self, server):
        type(self).url = server.url

    @property
    def retriever_constructor(self) -> Type[QuarryRetriever]:
        return QuarryRetriever

    @property
    def retriever_constructor_params(self) -> Dict[str, Any]:
        return {"url": self.url, "collection": DOCS}

    @property
    def retriever_query_example(self) -> str:
        return "retrieval with BM25 and vectors"


class TestQuarryVectorStoreStandard(VectorStoreIntegrationTests):
    """langchain-tests' VectorStoreIntegrationTests: a fresh collection per test, deleted after.
    quarry embeds with its own (hash) embedder; the suite's embeddings are not used."""

    @pytest.fixture
    def vectorstore(self, server):
        store = QuarryVectorStore("std-" + uuid.uuid4().hex[:10], client=server.client())
        try:
            yield store
        finally:
            try:
                store.client.delete_collection(store.collection)
            except Exception:
                pass


def test_retriever_options_and_metadata(server):
    r = QuarryRetriever(url=server.url, collection=DOCS, k=2, highlight=True, citation=True)
    docs = r.invoke("write-ahead log checkpoint")
    assert len(docs) == 2
    d = docs[0]
    assert d.id == "guides/wal.md"
    assert d.metadata["doc_id"] == "guides/wal.md"
    assert d.metadata["title"] == "Write-ahead logging"
    assert d.metadata["team"] == "core" and d.metadata["year"] == 2023
    assert d.metadata["citation"]["doc_id"] == "guides/wal.md"
    assert d.metadata["highlights"] and d.metadata["score"] > 0
    only_ops = r.invoke("write-ahead log", k=5, filter={"field": "team", "eq": "ops"}, mode="bm25")
    assert only_ops and {x.metadata["team"] for x in only_ops} == {"ops"}


async def test_retriever_async(server):
    r = QuarryRetriever(url=server.url, collection=DOCS, k=3, mode="bm25")
    docs = await r.ainvoke("compaction segments")
    assert docs[0].id == "ops/compaction.md" and len(docs) <= 3


def fresh_store(server) -> QuarryVectorStore:
    return QuarryVectorStore("lc-" + uuid.uuid4().hex[:10], client=server.client())


def test_vector_store_add_search_delete(server):
    store = fresh_store(server)
    ids = store.add_texts(
        ["quarry stores chunks", "foxes jump over dogs", "the write-ahead log is durable"],
        metadatas=[{"source": "a.txt", "title": "A"}, {"source": "b.txt"}, {"source": "c.txt", "n": 3}],
        ids=["a", "b", "c"],
    )
    assert ids == ["a", "b", "c"]
    generated = store.add_documents([Document(page_content="no id given", metadata={"source": "d.txt"})])
    assert len(generated) == 1 and generated[0] not in ids
    with_id = store.add_documents([Document(id="e", page_content="with an id", metadata={})])
    assert with_id == ["e"]

    hits = store.similarity_search("write-ahead log", k=1)
    assert hits[0].id == "c" and hits[0].metadata["source"] == "c.txt" and hits[0].metadata["n"] == 3
    # The reserved metadata key `source` is stored as `meta_source` in quarry.
    stored = store.client.get_document(store.collection, "a")
    assert stored.metadata == {"meta_source": "a.txt", "meta_title": "A"} and stored.title == "A"
    scored = store.similarity_search_with_score("foxes dogs", k=2)
    assert scored[0][0].id == "b" and scored[0][1] >= scored[1][1]
    filtered = store.similarity_search("quarry", k=5, filter={"field": "n", "eq": 3})
    assert [d.id for d in filtered] == ["c"]
    got = store.get_by_ids(["a", "missing", "c"])
    assert [(d.id, d.page_content, d.metadata["source"]) for d in got] == [
        ("a", "quarry stores chunks", "a.txt"),
        ("c", "the write-ahead log is durable", "c.txt"),
    ]
    assert store.delete(["a", "not-there"]) is True
    assert sorted(d.id for d in store.client.iter_documents(store.collection)) == sorted(["b", "c", "e", generated[0]])
    store.delete()
    assert list(store.client.iter_documents(store.collection)) == []
    retriever = store.as_retriever(search_kwargs={"k": 1})
    store.add_texts(["retrievers from stores work"], ids=["r"])
    assert [d.id for d in retriever.invoke("retrievers")] == ["r"]


async def test_vector_store_async_search(server):
    store = fresh_store(server)
    store.add_texts(["alpha beta", "gamma delta"], ids=["1", "2"])
    docs = await store.asimilarity_search("gamma", k=1)
    assert docs[0].id == "2"


def test_bad_metadata_is_an_error(server):
    store = fresh_store(server)
    # Nested 9 deep: quarry skips the document (bad_metadata) and the store says so.
    with pytest.raises(ValueError, match="bad_metadata"):
        store.add_texts(["x"], metadatas=[{"deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}}])


def quarry_ids(client: QuarryClient, collection: str) -> set:
    return {d.id for d in client.iter_documents(collection)}


def quarry_sources(client: QuarryClient, collection: str) -> dict:
    return {
        d.metadata["meta_source"]: client.get_document(collection, d.id).text
        for d in client.iter_documents(collection)
    }


def test_indexing_api_full_cleanup_leaves_exactly_the_source_set(server):
    store = fresh_store(server)
    client = store.client
    rm = InMemoryRecordManager(namespace="quarry/" + store.collection)
    rm.create_schema()

    def docs(spec: Dict[str, str]):
        return [Document(page_content=text, metadata={"source": src}) for src, text in spec.items()]

    v1 = {
        "a.md": "alpha document about write-ahead logs",
        "b.md": "beta document about compaction",
        "c.md": "gamma document about BM25",
        "d.md": "delta document about HNSW",
    }
    r1 = index(docs(v1), rm, store, cleanup="full", source_id_key="source", key_encoder="sha256")
    assert r1 == {"num_added": 4, "num_updated": 0, "num_skipped": 0, "num_deleted": 0}
    assert quarry_sources(client, store.collection) == v1
    assert quarry_ids(client, store.collection) == set(rm.list_keys())

    # Same input again: nothing is written.
    r2 = index(docs(v1), rm, store, cleanup="full", source_id_key="source", key_encoder="sha256")
    assert r2 == {"num_added": 0, "num_updated": 0, "num_skipped": 4, "num_deleted": 0}

    # b changes, d is removed, e is new.
    v2 = dict(v1)
    v2["b.md"] = "beta document about compaction, revised"
    del v2["d.md"]
    v2["e.md"] = "epsilon document about reciprocal rank fusion"
    r3 = index(docs(v2), rm, store, cleanup="full", source_id_key="source", key_encoder="sha256")
    assert (r3["num_added"], r3["num_skipped"], r3["num_deleted"]) == (2, 2, 2)
    assert quarry_sources(client, store.collection) == v2
    assert quarry_ids(client, store.collection) == set(rm.list_keys())
    assert client.get_collection(store.collection).documents == len(v2) == 4

    # Searches see the new set only.
    found = {d.metadata["source"] for d in store.similarity_search("document about", k=10)}
    assert found == set(v2)

    # Everything gone from the source: full cleanup empties the collection.
    r4 = index([], rm, store, cleanup="full", source_id_key="source", key_encoder="sha256")
    assert r4["num_deleted"] == 4
    assert quarry_ids(client, store.collection) == set()


def test_large_additions_are_split_into_batches(server):
    store = QuarryVectorStore("lc-" + uuid.uuid4().hex[:10], client=server.client(), batch_size=7, max_batch_bytes=20_000)
    texts = [f"document {i} " + "word " * 800 for i in range(20)]  # about 4 KB each
    ids = store.add_texts(texts, ids=[f"d{i:02}" for i in range(20)])
    assert sorted(d.id for d in store.client.iter_documents(store.collection)) == ids
    from quarry_client.langchain import _batches

    parts = list(_batches([{"text": t} for t in texts], 7, 20_000))
    assert all(len(p) <= 7 for p in parts) and len(parts) >= 5 and sum(map(len, parts)) == 20
