"""LangChain integrations: :class:`QuarryRetriever` (a ``BaseRetriever`` over quarry's hybrid
query) and :class:`QuarryVectorStore` (a ``VectorStore`` whose documents are quarry documents,
embedded by the server with the collection's embedder).

Needs ``langchain-core`` (``pip install 'quarry-rag-client[langchain]'``).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import VectorStore
from pydantic import ConfigDict, Field

from ._client import AsyncQuarryClient, QuarryClient, build_query
from .errors import CollectionNotFoundError, NotFoundError
from .types import Hit

#: Built-in fields of every quarry document, which a metadata object may not use as keys.
#: :class:`QuarryVectorStore` stores such a LangChain metadata key as ``meta_<key>`` (``source``
#: becomes ``meta_source``; ``title`` also becomes the document's title) and gives it back
#: under its own name.
RESERVED_KEYS = ("doc_id", "title", "source", "format", "updated_at", "heading_path")
RESERVED_PREFIX = "meta_"


def to_quarry_metadata(metadata: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """LangChain metadata → a quarry metadata object (reserved keys renamed)."""
    out: Dict[str, Any] = {}
    for k, v in (metadata or {}).items():
        out[RESERVED_PREFIX + k if k in RESERVED_KEYS else k] = v
    return out


def from_quarry_metadata(metadata: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """A quarry metadata object → LangChain metadata (reserved keys given back their names)."""
    out: Dict[str, Any] = {}
    for k, v in (metadata or {}).items():
        if k.startswith(RESERVED_PREFIX) and k[len(RESERVED_PREFIX):] in RESERVED_KEYS:
            out[k[len(RESERVED_PREFIX):]] = v
        else:
            out[k] = v
    return out


def hit_to_document(hit: Hit) -> Document:
    """A quarry hit as a LangChain ``Document``: ``page_content`` is the chunk's text (or its
    expanded passage), ``id`` the quarry document id, and ``metadata`` the document's metadata
    plus ``doc_id``, ``chunk_id``, ``title``, ``source``, ``score``, ``scores``, ``offsets``
    and, when asked for, ``highlights``, ``citation``, ``passage_offsets``, ``explain``."""
    meta = from_quarry_metadata(hit.metadata)
    meta.setdefault("source", hit.source)
    if hit.title:
        meta.setdefault("title", hit.title)
    meta.update(
        doc_id=hit.doc_id,
        chunk_id=hit.chunk_id,
        score=hit.score,
        scores=dict(hit.scores),
        offsets=list(hit.offsets),
        quarry_source=hit.source,
    )
    if hit.highlights is not None:
        meta["highlights"] = [list(r) for r in hit.highlights]
    if hit.citation is not None:
        meta["citation"] = dict(hit.citation.raw)
    if hit.explain is not None:
        meta["explain"] = hit.explain
    text = hit.text
    if hit.passage is not None:
        text = hit.passage.text
        meta["passage_offsets"] = list(hit.passage.offsets)
    if hit.passage_ref is not None:
        meta["passage_ref"] = hit.passage_ref
    return Document(id=hit.doc_id, page_content=text, metadata=meta)


_CLIENT_KEYS = ("url", "token", "timeout", "max_retries")


class QuarryRetriever(BaseRetriever):
    """Retrieves chunks of a quarry collection with its hybrid (or BM25, or vector) query.

    ``k`` is ``top_k``; every other option of docs/query.md can be set on the retriever
    (``mode``, ``filter``, ``fusion``, ``group_by``, ``min_score``, ``highlight``,
    ``citation``, ``expand``, ``rerank``, ``diversify``, ``include``...) or in ``query_options``,
    and overridden per call: ``retriever.invoke("text", k=3, filter={...})``.

    The connection is ``url``/``token`` (defaults ``$QUARRY_URL``, ``$QUARRY_TOKEN``), or a
    ready ``client`` / ``async_client``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    collection: str = "default"
    k: int = 4
    mode: Optional[str] = None
    group_by: Optional[str] = None
    filter: Optional[Dict[str, Any]] = None
    fusion: Optional[Dict[str, Any]] = None
    min_score: Optional[float] = None
    highlight: Optional[bool] = None
    citation: Optional[bool] = None
    query_options: Dict[str, Any] = Field(default_factory=dict)
    url: Optional[str] = None
    token: Optional[str] = Field(default=None, repr=False)
    timeout: float = 30.0
    max_retries: int = 3
    client: Optional[QuarryClient] = Field(default=None, exclude=True, repr=False)
    async_client: Optional[AsyncQuarryClient] = Field(default=None, exclude=True, repr=False)

    def _body(self, query: str, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        opts: Dict[str, Any] = dict(self.query_options)
        for name in ("mode", "group_by", "filter", "fusion", "min_score", "highlight", "citation"):
            v = getattr(self, name)
            if v is not None:
                opts[name] = v
        opts["top_k"] = self.k
        if "k" in kwargs:
            opts["top_k"] = kwargs.pop("k")
        opts.update(kwargs)
        return build_query(query, **opts)

    def _sync_client(self) -> QuarryClient:
        if self.client is None:
            self.client = QuarryClient(
                self.url, self.token, timeout=self.timeout, max_retries=self.max_retries
            )
        return self.client

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> List[Document]:
        body = self._body(query, kwargs)
        resp = self._sync_client().query(self.collection, **_split(body))
        return [hit_to_document(h) for h in resp.results]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> List[Document]:
        body = self._body(query, kwargs)
        if self.async_client is not None:
            resp = await self.async_client.query(self.collection, **_split(body))
        else:
            # A client per call: an httpx.AsyncClient belongs to the event loop it first ran on.
            async with AsyncQuarryClient(
                self.url, self.token, timeout=self.timeout, max_retries=self.max_retries
            ) as c:
                resp = await c.query(self.collection, **_split(body))
        return [hit_to_document(h) for h in resp.results]


def _batches(recs: List[Dict[str, Any]], count: int, max_bytes: int) -> Iterable[List[Dict[str, Any]]]:
    """Upsert batches of at most ``count`` documents and about ``max_bytes`` of JSON (the
    server refuses bodies over ``server.body_limit_bytes``, 8 MiB by default); a document
    larger than that goes alone."""
    part: List[Dict[str, Any]] = []
    size = 0
    for r in recs:
        n = len(json.dumps(r, ensure_ascii=False).encode("utf-8"))
        if part and (len(part) >= count or size + n > max_bytes):
            yield part
            part, size = [], 0
        part.append(r)
        size += n
    if part:
        yield part


def _split(body: Dict[str, Any]) -> Dict[str, Any]:
    """A query body back into ``query(...)`` keywords."""
    b = dict(body)
    q = b.pop("query", None)
    return {"query": q, **b}


class QuarryVectorStore(VectorStore):
    """A LangChain ``VectorStore`` over one quarry collection.

    Texts are embedded by the server with the collection's embedder (quarry has no use for a
    LangChain ``Embeddings``). Each LangChain document is one quarry document: its ``id`` (or
    a new UUID) is the quarry id, so adding a document with an existing id replaces it, which
    makes the store fit LangChain's indexing API (``index(..., cleanup="full")``). Metadata keys
    that are quarry's built-in fields (``source``, ``title``...) are stored as ``meta_<key>``;
    ``title`` also becomes the quarry document's title. ``similarity_search`` runs quarry's
    query (hybrid by default) with ``group_by: "document"`` unless told otherwise, and returns
    each hit as a document with its ``id``, the text of its best chunk and the metadata as
    given (with ``quarry_metadata=True``, also the hit's ``doc_id``, ``score``, ``offsets``,
    ``citation``... as :class:`QuarryRetriever` gives them). A search of a collection that
    does not exist yet finds nothing.
    """

    def __init__(
        self,
        collection: str = "default",
        *,
        client: Optional[QuarryClient] = None,
        async_client: Optional[AsyncQuarryClient] = None,
        url: Optional[str] = None,
        token: Optional[str] = None,
        batch_size: int = 256,
        max_batch_bytes: int = 4 << 20,
        query_options: Optional[Dict[str, Any]] = None,
        quarry_metadata: bool = False,
    ) -> None:
        self.collection = collection
        self.max_batch_bytes = max_batch_bytes
        self.quarry_metadata = quarry_metadata
        self.client = client or QuarryClient(url, token)
        self._async_client = async_client
        self._url, self._token = url, token
        self.batch_size = batch_size
        self.query_options: Dict[str, Any] = {"group_by": "document"}
        self.query_options.update(query_options or {})

    @property
    def embeddings(self) -> Optional[Embeddings]:
        return None

    # -- writes ----------------------------------------------------------------------------------
    def _records(
        self, texts: Sequence[str], metadatas: Optional[Sequence[Optional[dict]]], ids: Sequence[str]
    ) -> List[Dict[str, Any]]:
        recs = []
        for i, text in enumerate(texts):
            md = dict((metadatas[i] if metadatas else None) or {})
            rec: Dict[str, Any] = {"_id": ids[i], "text": text, "metadata": to_quarry_metadata(md)}
            if isinstance(md.get("title"), str) and md["title"]:
                rec["title"] = md["title"]
            recs.append(rec)
        return recs

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: Optional[List[dict]] = None,
        *,
        ids: Optional[List[str]] = None,
        **kwargs: Any,
    ) -> List[str]:
        texts = list(texts)
        if ids is None:
            ids = [str(uuid.uuid4()) for _ in texts]
        ids = [str(i) if i is not None else str(uuid.uuid4()) for i in ids]
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"{len(metadatas)} metadatas for {len(texts)} texts")
        recs = self._records(texts, metadatas, ids)
        batch = int(kwargs.get("batch_size") or self.batch_size)
        for part in _batches(recs, batch, self.max_batch_bytes):
            summary = self.client.put_documents(self.collection, part)
            if summary.skipped:
                raise ValueError(
                    f"quarry skipped documents of the batch: {summary.skipped}: {summary.problems}"
                )
        return ids

    def add_documents(self, documents: List[Document], **kwargs: Any) -> List[str]:
        ids = kwargs.pop("ids", None)
        if ids is None:
            ids = [d.id if d.id else str(uuid.uuid4()) for d in documents]
        return self.add_texts(
            [d.page_content for d in documents],
            [d.metadata for d in documents],
            ids=list(ids),
            **kwargs,
        )

    def delete(self, ids: Optional[List[str]] = None, **kwargs: Any) -> Optional[bool]:
        """Delete these documents (all of the collection's when ``ids`` is None). A missing id is
        not an error."""
        if ids is None:
            try:
                ids = [d.id for d in self.client.iter_documents(self.collection)]
            except NotFoundError:
                return True
        for i in ids:
            try:
                self.client.delete_document(self.collection, i)
            except NotFoundError:
                pass
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> List[Document]:
        out = []
        for i in ids:
            try:
                d = self.client.get_document(self.collection, i)
            except NotFoundError:
                continue
            meta = from_quarry_metadata(d.metadata)
            out.append(Document(id=d.id, page_content=d.text or "", metadata=meta))
        return out

    # -- search ----------------------------------------------------------------------------------
    def _query(self, query: str, k: int, filter: Optional[dict], kwargs: Dict[str, Any]) -> Dict[str, Any]:
        opts = dict(self.query_options)
        opts.update(kwargs)
        opts["top_k"] = k
        if filter is not None:
            opts["filter"] = filter
        return _split(build_query(query, **opts))

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Optional[dict] = None, **kwargs: Any
    ) -> List[Tuple[Document, float]]:
        """The ``k`` best hits with their quarry score (higher is better; see docs/query.md for
        what it means in each mode)."""
        try:
            resp = self.client.query(self.collection, **self._query(query, k, filter, kwargs))
        except CollectionNotFoundError:
            return []
        return [(self._doc(h), h.score) for h in resp.results]

    def _doc(self, hit: Hit) -> Document:
        if self.quarry_metadata:
            return hit_to_document(hit)
        return Document(id=hit.doc_id, page_content=hit.text, metadata=from_quarry_metadata(hit.metadata))

    def similarity_search(
        self, query: str, k: int = 4, filter: Optional[dict] = None, **kwargs: Any
    ) -> List[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: Optional[dict] = None, **kwargs: Any
    ) -> List[Tuple[Document, float]]:
        body = self._query(query, k, filter, kwargs)
        try:
            if self._async_client is not None:
                resp = await self._async_client.query(self.collection, **body)
            else:
                async with AsyncQuarryClient(self.client.url, self.client._cfg.token) as c:
                    resp = await c.query(self.collection, **body)
        except CollectionNotFoundError:
            return []
        return [(self._doc(h), h.score) for h in resp.results]

    async def asimilarity_search(
        self, query: str, k: int = 4, filter: Optional[dict] = None, **kwargs: Any
    ) -> List[Document]:
        return [d for d, _ in await self.asimilarity_search_with_score(query, k, filter, **kwargs)]

    def _select_relevance_score_fn(self):
        # Scores are already "higher is better"; hybrid weighted fusion is 0 to 1.
        return lambda score: score

    def similarity_search_by_vector(
        self, embedding: List[float], k: int = 4, filter: Optional[dict] = None, **kwargs: Any
    ) -> List[Document]:
        opts = dict(self.query_options)
        opts.update(kwargs)
        opts.update(top_k=k, mode="vector", vector=list(embedding))
        if filter is not None:
            opts["filter"] = filter
        try:
            resp = self.client.query(self.collection, **opts)
        except CollectionNotFoundError:
            return []
        return [self._doc(h) for h in resp.results]

    @classmethod
    def from_texts(
        cls,
        texts: List[str],
        embedding: Optional[Embeddings] = None,
        metadatas: Optional[List[dict]] = None,
        *,
        ids: Optional[List[str]] = None,
        collection: str = "default",
        **kwargs: Any,
    ) -> "QuarryVectorStore":
        """A store over ``collection`` holding these texts (``embedding`` is ignored: the server
        embeds)."""
        store = cls(collection, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store
