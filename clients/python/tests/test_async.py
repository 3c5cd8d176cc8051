"""The async client against a real server."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from quarry_client import (
    AsyncQuarryClient,
    BadRequestError,
    CollectionNotFoundError,
    DocumentNotFoundError,
    QueryResponse,
)

from conftest import CORPUS, DOCS


async def test_async_query_and_batch(server):
    async with AsyncQuarryClient(server.url) as c:
        r = await c.query(DOCS, "write-ahead log", top_k=2, highlight=True, citation=True)
        assert isinstance(r, QueryResponse) and len(r) == 2
        assert r.results[0].citation is not None
        # Queries run concurrently on one client.
        many = await asyncio.gather(*(c.query(DOCS, q, top_k=1) for q in ["BM25", "HNSW graph", "compaction"]))
        assert [m.results[0].doc_id for m in many] == ["guides/bm25.md", "guides/hnsw.md", "ops/compaction.md"]
        answers = await c.query_batch(DOCS, ["BM25", {"query": "restart", "mode": "bm25"}])
        assert len(answers) == 2


async def test_async_documents_and_errors(server):
    col = "async-" + uuid.uuid4().hex[:8]
    async with AsyncQuarryClient(server.url) as c:
        s = await c.put_documents(col, CORPUS[:3])
        assert s.added == 3
        assert (await c.get_document(col, "guides/wal.md")).text == CORPUS[0]["text"]
        ids = [d.id async for d in c.iter_documents(col, page_size=2)]
        assert ids == sorted(d["_id"] for d in CORPUS[:3])
        await c.delete_document(col, "guides/wal.md")
        with pytest.raises(DocumentNotFoundError):
            await c.get_document(col, "guides/wal.md")
        task = await c.put_documents(col, [{"_id": "t", "text": "task"}], wait=False)
        assert (await c.wait_task(task.task_id, timeout=30)).state == "succeeded"
        with pytest.raises(CollectionNotFoundError) as e:
            await c.query("nope-nope", "x")
        assert e.value.code == "collection_not_found"
        with pytest.raises(BadRequestError) as e:
            await c.query(DOCS, "x", filter={"field": "nope", "eq": 1})
        assert e.value.code == "invalid_request"
        assert [v.active for v in await c.list_versions(col)] == [True]
        await c.delete_collection(col)
