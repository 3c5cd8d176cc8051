"""LlamaIndex integration: :class:`QuarryLlamaRetriever`, a ``BaseRetriever`` returning
``NodeWithScore`` with metadata and citations.

Needs ``llama-index-core`` (``pip install 'quarry-rag-client[llama-index]'``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from llama_index.core.callbacks import CallbackManager
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import (
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)

from ._client import AsyncQuarryClient, QuarryClient
from .types import Hit

#: Metadata keys kept from the LLM's and the embedder's view of a node (they are for citing,
#: not for reading): the LLM sees the document's own metadata, ``title`` and ``source``.
CITATION_KEYS = [
    "doc_id",
    "chunk_id",
    "offsets",
    "highlights",
    "citation",
    "heading_path",
    "scores",
    "score",
    "explain",
    "passage_offsets",
    "passage_ref",
]


def hit_to_node(hit: Hit) -> NodeWithScore:
    """A quarry hit as a ``NodeWithScore``.

    The node's text is the hit's chunk (or its expanded passage); its id is
    ``"<doc_id>#<chunk_id>"``; its SOURCE relationship is the quarry document. ``metadata``
    holds the document's metadata and the citation: ``doc_id``, ``chunk_id``, ``title``,
    ``source``, ``offsets`` (byte offsets ``[start, end)`` of the chunk in the document's
    extracted text), ``highlights`` (byte ranges in the node's text), ``heading_path`` and
    ``citation`` (the API's object) when asked for, and ``scores`` (per retriever).
    """
    meta: Dict[str, Any] = dict(hit.metadata)
    meta.update(
        doc_id=hit.doc_id,
        chunk_id=hit.chunk_id,
        title=hit.title,
        source=hit.source,
        offsets=list(hit.offsets),
        scores=dict(hit.scores),
    )
    text = hit.text
    if hit.passage is not None:
        text = hit.passage.text
        meta["passage_offsets"] = list(hit.passage.offsets)
        if hit.passage.highlights is not None:
            meta["highlights"] = [list(r) for r in hit.passage.highlights]
    elif hit.highlights is not None:
        meta["highlights"] = [list(r) for r in hit.highlights]
    if hit.passage_ref is not None:
        # Its passage is merged into that of the hit at this index of the answer.
        meta["passage_ref"] = hit.passage_ref
    if hit.citation is not None:
        meta["citation"] = dict(hit.citation.raw)
        if hit.citation.heading_path is not None:
            meta["heading_path"] = list(hit.citation.heading_path)
    if hit.explain is not None:
        meta["explain"] = hit.explain
    node = TextNode(
        id_=f"{hit.doc_id}#{hit.chunk_id}",
        text=text,
        metadata=meta,
        excluded_llm_metadata_keys=[k for k in CITATION_KEYS if k in meta],
        excluded_embed_metadata_keys=[k for k in CITATION_KEYS if k in meta],
        relationships={
            NodeRelationship.SOURCE: RelatedNodeInfo(
                node_id=hit.doc_id, metadata={"title": hit.title, "source": hit.source}
            )
        },
    )
    return NodeWithScore(node=node, score=hit.score)


class QuarryLlamaRetriever(BaseRetriever):
    """Retrieves nodes from a quarry collection.

    ``similarity_top_k`` is ``top_k``; ``citation`` and ``highlight`` are on by default so
    every node can be cited; any other query option (docs/query.md) goes in as a keyword
    (``mode="bm25"``, ``filter={...}``, ``alpha=0.5``, ``expand=1``...).
    """

    def __init__(
        self,
        collection: str = "default",
        *,
        similarity_top_k: int = 4,
        client: Optional[QuarryClient] = None,
        async_client: Optional[AsyncQuarryClient] = None,
        url: Optional[str] = None,
        token: Optional[str] = None,
        highlight: bool = True,
        citation: bool = True,
        callback_manager: Optional[CallbackManager] = None,
        verbose: bool = False,
        **query_options: Any,
    ) -> None:
        super().__init__(callback_manager=callback_manager, verbose=verbose)
        self.collection = collection
        self.similarity_top_k = similarity_top_k
        self._client = client
        self._async_client = async_client
        self._url, self._token = url, token
        self.query_options: Dict[str, Any] = dict(
            highlight=highlight, citation=citation, **query_options
        )

    def _opts(self) -> Dict[str, Any]:
        return dict(self.query_options, top_k=self.similarity_top_k)

    def _retrieve(self, query_bundle: QueryBundle) -> List[NodeWithScore]:
        if self._client is None:
            self._client = QuarryClient(self._url, self._token)
        # A bundle's own embedding is not used: quarry embeds the text with the collection's
        # model, which a caller's embedding may not match.
        resp = self._client.query(self.collection, query_bundle.query_str, **self._opts())
        return [hit_to_node(h) for h in resp.results]

    async def _aretrieve(self, query_bundle: QueryBundle) -> List[NodeWithScore]:
        if self._async_client is not None:
            resp = await self._async_client.query(
                self.collection, query_bundle.query_str, **self._opts()
            )
        else:
            async with AsyncQuarryClient(self._url, self._token) as c:
                resp = await c.query(self.collection, query_bundle.query_str, **self._opts())
        return [hit_to_node(h) for h in resp.results]
