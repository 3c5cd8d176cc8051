"""Typed results of the quarry HTTP API (plain dataclasses).

Every result keeps the JSON it was read from in ``raw``, so a field a newer server adds is
reachable before the client knows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple


def _offsets(v: Any) -> Optional[Tuple[int, int]]:
    if v is None:
        return None
    return (int(v[0]), int(v[1]))


def _ranges(v: Any) -> Optional[List[Tuple[int, int]]]:
    if v is None:
        return None
    return [(int(a), int(b)) for a, b in v]


@dataclass
class Citation:
    """Where to cite a hit: the document, the chunk's byte offsets in the document's extracted
    text and, for Markdown, the headings the chunk is under."""

    doc_id: str
    title: str
    source: str
    offsets: Tuple[int, int]
    heading_path: Optional[List[str]] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Citation":
        return cls(
            doc_id=d.get("doc_id", ""),
            title=d.get("title", ""),
            source=d.get("source", ""),
            offsets=_offsets(d.get("offsets")) or (0, 0),
            heading_path=d.get("heading_path"),
            raw=d,
        )


@dataclass
class Passage:
    """A hit's chunk with its neighbours (``expand``)."""

    text: str
    offsets: Tuple[int, int]
    highlights: Optional[List[Tuple[int, int]]] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Passage":
        return cls(
            text=d.get("text", ""),
            offsets=_offsets(d.get("offsets")) or (0, 0),
            highlights=_ranges(d.get("highlights")),
            raw=d,
        )


@dataclass
class Hit:
    """One result of a query."""

    doc_id: str
    chunk_id: str
    score: float
    title: str
    text: str
    source: str
    offsets: Tuple[int, int]
    scores: Dict[str, float]
    metadata: Dict[str, Any]
    highlights: Optional[List[Tuple[int, int]]] = None
    citation: Optional[Citation] = None
    passage: Optional[Passage] = None
    passage_ref: Optional[int] = None
    explain: Optional[Dict[str, Any]] = None
    also_in: Optional[List[str]] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Hit":
        return cls(
            doc_id=d.get("doc_id", ""),
            chunk_id=d.get("chunk_id", ""),
            score=float(d.get("score", 0.0)),
            title=d.get("title", ""),
            text=d.get("text", ""),
            source=d.get("source", ""),
            offsets=_offsets(d.get("offsets")) or (0, 0),
            scores=d.get("scores") or {},
            metadata=d.get("metadata") or {},
            highlights=_ranges(d.get("highlights")),
            citation=Citation.from_json(d["citation"]) if d.get("citation") else None,
            passage=Passage.from_json(d["passage"]) if d.get("passage") else None,
            passage_ref=d.get("passage_ref"),
            explain=d.get("explain"),
            also_in=d.get("also_in"),
            raw=d,
        )

    def highlighted(self, start: str = "**", end: str = "**") -> str:
        """The hit's text with its highlights (byte ranges) wrapped in ``start``/``end``."""
        if not self.highlights:
            return self.text
        b = self.text.encode("utf-8")
        out, pos = [], 0
        for a, z in self.highlights:
            out.append(b[pos:a].decode("utf-8"))
            out.append(start + b[a:z].decode("utf-8") + end)
            pos = z
        out.append(b[pos:].decode("utf-8"))
        return "".join(out)


@dataclass
class FacetValue:
    value: Any
    count: int


@dataclass
class QueryResponse:
    """The answer to a query: its hits and how it was answered."""

    results: List[Hit]
    embedding_version: Optional[str]
    degraded: bool
    took_ms: float
    embed_ms: Optional[float] = None
    warnings: List[str] = field(default_factory=list)
    facets: Optional[Dict[str, List[FacetValue]]] = None
    timings: Optional[Dict[str, float]] = None
    #: With ``explain`` and BM25 query expansion: ``{"term", "weight", "added"}`` per word.
    expansion: Optional[List[Dict[str, Any]]] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "QueryResponse":
        facets = None
        if d.get("facets") is not None:
            facets = {
                k: [FacetValue(value=v.get("value"), count=int(v.get("count", 0))) for v in vs]
                for k, vs in d["facets"].items()
            }
        return cls(
            results=[Hit.from_json(h) for h in d.get("results", [])],
            embedding_version=d.get("embedding_version"),
            degraded=bool(d.get("degraded", False)),
            took_ms=float(d.get("took_ms", 0.0)),
            embed_ms=d.get("embed_ms"),
            warnings=list(d.get("warnings") or []),
            facets=facets,
            timings=d.get("timings"),
            expansion=d.get("expansion"),
            raw=d,
        )

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)


@dataclass
class WriteSummary:
    """What an upsert of documents did."""

    collection: str
    added: int
    updated: int
    unchanged: int
    deleted: int
    chunks: int
    skipped: Dict[str, int]
    warnings: Dict[str, Any]
    problems: List[Dict[str, Any]]
    seconds: float
    embedded: Optional[int] = None
    cache_hits: Optional[int] = None
    acl_updated: int = 0
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "WriteSummary":
        return cls(
            collection=d.get("collection", ""),
            added=int(d.get("added", 0)),
            updated=int(d.get("updated", 0)),
            unchanged=int(d.get("unchanged", 0)),
            deleted=int(d.get("deleted", 0)),
            chunks=int(d.get("chunks", 0)),
            skipped=d.get("skipped") or {},
            warnings=d.get("warnings") or {},
            problems=list(d.get("problems") or []),
            seconds=float(d.get("seconds", 0.0)),
            embedded=d.get("embedded"),
            cache_hits=d.get("cache_hits"),
            acl_updated=int(d.get("acl_updated") or 0),
            raw=d,
        )


@dataclass
class Task:
    """A write sent with ``wait=False``."""

    task_id: str
    kind: str
    collection: str
    state: str
    created_at: Optional[int] = None
    finished_at: Optional[int] = None
    summary: Optional[WriteSummary] = None
    error: Optional[Dict[str, str]] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def done(self) -> bool:
        return self.state != "running"

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Task":
        return cls(
            task_id=d.get("task_id", ""),
            kind=d.get("kind", ""),
            collection=d.get("collection", ""),
            state=d.get("state", ""),
            created_at=d.get("created_at"),
            finished_at=d.get("finished_at"),
            summary=WriteSummary.from_json(d["summary"]) if d.get("summary") else None,
            error=d.get("error"),
            raw=d,
        )


@dataclass
class DocumentInfo:
    """A document as listed or fetched (``text`` only when fetched one at a time)."""

    id: str
    title: str
    source: str
    format: str
    content_hash: str
    metadata: Dict[str, Any]
    chunks: int
    generation: Optional[int] = None
    updated_at: Optional[int] = None
    acl: Optional[List[str]] = None
    text: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "DocumentInfo":
        return cls(
            id=str(d.get("id", "")),
            title=d.get("title", ""),
            source=d.get("source", ""),
            format=d.get("format", ""),
            content_hash=d.get("content_hash", ""),
            metadata=d.get("metadata") or {},
            chunks=int(d.get("chunks", 0)),
            generation=d.get("generation"),
            updated_at=d.get("updated_at"),
            acl=d.get("acl"),
            text=d.get("text"),
            raw=d,
        )


@dataclass
class DocumentPage:
    documents: List[DocumentInfo]
    next_after: Optional[str]

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "DocumentPage":
        return cls(
            documents=[DocumentInfo.from_json(x) for x in d.get("documents", [])],
            next_after=d.get("next_after"),
        )


@dataclass
class Collection:
    """A collection's stats (``generation``, ``vectors``, sizes: admins only)."""

    name: str
    documents: int
    chunks: int
    active_embedding_version: Optional[str] = None
    embedder: Optional[str] = None
    fingerprint: Optional[str] = None
    vectors: Optional[int] = None
    generation: Optional[int] = None
    versions_building: List[str] = field(default_factory=list)
    chunk_options: Optional[Dict[str, Any]] = None
    text_bytes: Optional[int] = None
    index_bytes: Optional[int] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Collection":
        return cls(
            name=d.get("name", ""),
            documents=int(d.get("documents", 0)),
            chunks=int(d.get("chunks", 0)),
            active_embedding_version=d.get("active_embedding_version"),
            embedder=d.get("embedder"),
            fingerprint=d.get("fingerprint"),
            vectors=d.get("vectors"),
            generation=d.get("generation"),
            versions_building=list(d.get("versions_building") or []),
            chunk_options=d.get("chunk_options"),
            text_bytes=d.get("text_bytes"),
            index_bytes=d.get("index_bytes"),
            raw=d,
        )


@dataclass
class EmbeddingVersion:
    id: str
    embedder: str
    fingerprint: str
    state: str
    active: bool
    vectors: Optional[int] = None
    quantization: Optional[str] = None
    spec: Dict[str, Any] = field(default_factory=dict)
    created_at: Optional[int] = None
    activated_at: Optional[int] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "EmbeddingVersion":
        return cls(
            id=d.get("id", ""),
            embedder=d.get("embedder", ""),
            fingerprint=d.get("fingerprint", ""),
            state=d.get("state", ""),
            active=bool(d.get("active", False)),
            vectors=d.get("vectors"),
            quantization=d.get("quantization"),
            spec=d.get("spec") or {},
            created_at=d.get("created_at"),
            activated_at=d.get("activated_at"),
            raw=d,
        )


@dataclass
class Job:
    """A background job (re-index, re-chunk, requantize) and its progress."""

    id: str
    kind: str
    collection: str
    state: str
    processed: int = 0
    total: int = 0
    embedded: int = 0
    cache_hits: int = 0
    error: Optional[str] = None
    result: Any = None
    params: Dict[str, Any] = field(default_factory=dict)
    rate_per_s: Optional[float] = None
    eta_s: Optional[float] = None
    created_at: Optional[int] = None
    started_at: Optional[int] = None
    updated_at: Optional[int] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def done(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled")

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Job":
        return cls(
            id=d.get("id", ""),
            kind=d.get("kind", ""),
            collection=d.get("collection", ""),
            state=d.get("state", ""),
            processed=int(d.get("processed") or 0),
            total=int(d.get("total") or 0),
            embedded=int(d.get("embedded") or 0),
            cache_hits=int(d.get("cache_hits") or 0),
            error=d.get("error"),
            result=d.get("result"),
            params=d.get("params") or {},
            rate_per_s=d.get("rate_per_s"),
            eta_s=d.get("eta_s"),
            created_at=d.get("created_at"),
            started_at=d.get("started_at"),
            updated_at=d.get("updated_at"),
            raw=d,
        )


@dataclass
class GoldenSet:
    collection: str
    name: str
    queries: int
    created_at: Optional[int] = None

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "GoldenSet":
        return cls(
            collection=d.get("collection", ""),
            name=d.get("name", ""),
            queries=int(d.get("queries", 0)),
            created_at=d.get("created_at"),
        )


@dataclass
class EvalRun:
    """An evaluation run: ``metrics`` maps a mode to its metrics (``ndcg@10``, ``recall@100``,
    ``latency_ms``...). Answers to ``run_eval`` and entries of ``list_eval_runs`` both read as
    this (``run_id`` / ``id``, ``modes`` / ``metrics``)."""

    id: str
    collection: str
    golden: Optional[str]
    metrics: Dict[str, Dict[str, Any]]
    principal: Optional[Dict[str, Any]] = None
    fusion: Optional[Dict[str, Any]] = None
    config: Optional[Dict[str, Any]] = None
    created_at: Optional[int] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    def ndcg10(self, mode: str = "hybrid") -> Optional[float]:
        m = self.metrics.get(mode)
        return None if m is None else m.get("ndcg@10")

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "EvalRun":
        config = d.get("config")
        golden = d.get("golden")
        if golden is None and isinstance(config, dict):
            golden = config.get("golden")
        return cls(
            id=d.get("run_id") or d.get("id") or "",
            collection=d.get("collection", ""),
            golden=golden,
            metrics=d.get("modes") or d.get("metrics") or {},
            principal=d.get("principal") or (config or {}).get("principal"),
            fusion=d.get("fusion") or (config or {}).get("fusion"),
            config=config,
            created_at=d.get("created_at"),
            raw=d,
        )
