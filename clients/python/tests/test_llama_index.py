"""LlamaIndex: the retriever returns NodeWithScore with the hit's metadata and citation."""

from __future__ import annotations

from llama_index.core.schema import MetadataMode, NodeRelationship, NodeWithScore, QueryBundle, TextNode

from quarry_client import AsyncQuarryClient
from quarry_client.llama_index import QuarryLlamaRetriever

from conftest import CORPUS, DOCS, MD


def test_retrieve_nodes_with_citations(server):
    r = QuarryLlamaRetriever(DOCS, url=server.url, similarity_top_k=3)
    nodes = r.retrieve("write-ahead log checkpoint")
    assert len(nodes) == 3 and all(isinstance(n, NodeWithScore) for n in nodes)
    top = nodes[0]
    assert isinstance(top.node, TextNode)
    assert top.score is not None and top.score >= nodes[-1].score
    m = top.node.metadata
    assert m["doc_id"] == "guides/wal.md" and m["title"] == "Write-ahead logging"
    assert m["source"] == "api" and m["team"] == "core" and m["tags"] == ["storage", "durability"]
    start, end = m["offsets"]
    assert CORPUS[0]["text"].encode()[start:end].decode() == top.node.get_content()
    assert m["citation"] == {"doc_id": "guides/wal.md", "title": "Write-ahead logging", "source": "api", "offsets": [start, end]}
    assert m["highlights"]
    words = {top.node.get_content().encode()[a:b].decode().lower() for a, b in m["highlights"]}
    assert words & {"checkpoint", "log", "write"}
    assert top.node.node_id == f"guides/wal.md#{m['chunk_id']}"
    assert top.node.relationships[NodeRelationship.SOURCE].node_id == "guides/wal.md"
    assert top.node.ref_doc_id == "guides/wal.md"
    # The LLM sees the document's metadata and title, not the citation bookkeeping.
    llm_view = top.node.get_content(metadata_mode=MetadataMode.LLM)
    assert "Write-ahead logging" in llm_view and "chunk_id" not in llm_view


def test_markdown_citation_with_path_and_heading(server):
    r = QuarryLlamaRetriever(MD, url=server.url, similarity_top_k=1, mode="bm25")
    [n] = r.retrieve("upgrade step replaces the binary")
    m = n.node.metadata
    assert m["doc_id"] == "manual.md"
    assert m["source"] == str(server.md_folder / "manual.md")
    assert m["heading_path"] == ["Manual", "Upgrades"]


def test_options_and_expansion(server):
    r = QuarryLlamaRetriever(
        DOCS, url=server.url, similarity_top_k=5, filter={"field": "team", "eq": "search"}, expand=1
    )
    nodes = r.retrieve(QueryBundle("retrieval"))
    assert nodes and {n.node.metadata["team"] for n in nodes} == {"search"}
    assert all("passage_offsets" in n.node.metadata for n in nodes if "passage_ref" not in n.node.metadata)


async def test_aretrieve(server):
    async with AsyncQuarryClient(server.url) as ac:
        r = QuarryLlamaRetriever(DOCS, async_client=ac, similarity_top_k=2, mode="bm25")
        nodes = await r.aretrieve("compaction segments")
        assert nodes[0].node.metadata["doc_id"] == "ops/compaction.md"
    plain = QuarryLlamaRetriever(DOCS, url=server.url, similarity_top_k=1)
    assert len(await plain.aretrieve("HNSW graph")) == 1
