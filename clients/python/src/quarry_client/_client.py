"""Sync and async clients over httpx.

Both share one description of every route (``_Routes``): each method builds its request and
hands it, with the function that reads the answer, to ``_call``, which the sync client runs
at once and the async client returns as a coroutine. So ``client.query(...)`` returns a
``QueryResponse`` and ``await aclient.query(...)`` does too.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import time
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Union,
)
from urllib.parse import quote

import httpx

from .errors import APIError, QuarryConnectionError, error_from_response
from .types import (
    Collection,
    DocumentInfo,
    DocumentPage,
    EmbeddingVersion,
    EvalRun,
    GoldenSet,
    Job,
    QueryResponse,
    Task,
    WriteSummary,
)

DEFAULT_URL = "http://127.0.0.1:7878"
URL_ENV = "QUARRY_URL"
TOKEN_ENV = "QUARRY_TOKEN"

#: Statuses retried with backoff: 429 (a proxy's rate limit) and 503 (``busy``, ``not_ready``,
#: ``embedding_unavailable``, ``cancelled``: nothing was written, the request may be sent again).
RETRY_STATUSES = frozenset({429, 503})

# Query options the API takes (docs/query.md), in the order of the docs.
_QUERY_FIELDS = (
    "feedback",
    "top_k",
    "mode",
    "group_by",
    "fusion",
    "filter",
    "facets",
    "include",
    "offset",
    "min_score",
    "explain",
    "vector",
    "embedding_version",
    "highlight",
    "citation",
    "expand",
    "rerank",
    "diversify",
)

Json = Dict[str, Any]
Document = Mapping[str, Any]


def _seg(s: Union[str, int]) -> str:
    """One path segment, percent-encoded (a document id may hold `/`, `?`, `#`, `%`)."""
    return quote(str(s), safe="")


def build_query(
    query: Optional[str] = None,
    *,
    top_k: Optional[int] = None,
    mode: Optional[str] = None,
    group_by: Optional[str] = None,
    fusion: Optional[Json] = None,
    alpha: Optional[float] = None,
    rrf_k: Optional[int] = None,
    filter: Optional[Json] = None,
    facets: Optional[Sequence[str]] = None,
    include: Optional[Sequence[str]] = None,
    offset: Optional[int] = None,
    min_score: Optional[float] = None,
    explain: Optional[bool] = None,
    vector: Optional[Sequence[float]] = None,
    embedding_version: Optional[str] = None,
    highlight: Optional[bool] = None,
    citation: Optional[bool] = None,
    expand: Union[int, Json, None] = None,
    rerank: Union[int, Json, None] = None,
    diversify: Union[float, Json, None] = None,
    feedback: Union[bool, Json, None] = None,
) -> Json:
    """The JSON body of a query (``POST /v1/collections/{c}/query``) from keyword options.

    Shorthands: ``alpha=0.5`` is ``fusion={"method": "weighted", "alpha": 0.5}``, ``rrf_k=60``
    is ``fusion={"method": "rrf", "k": 60}``, ``expand=1`` is ``{"neighbors": 1}``,
    ``rerank=50`` is ``{"top_n": 50}``, ``diversify=0.7`` is ``{"lambda": 0.7}``. ``feedback``
    (BM25 query expansion) is ``True``, ``False`` or ``{"fb_docs", "fb_terms", "orig_weight"}``. Options left
    at ``None`` are not sent, so the server's defaults apply.
    """
    if alpha is not None and rrf_k is not None:
        raise ValueError("give alpha (weighted fusion) or rrf_k (RRF), not both")
    if fusion is not None and (alpha is not None or rrf_k is not None):
        raise ValueError("give fusion, or its shorthand alpha / rrf_k, not both")
    if alpha is not None:
        fusion = {"method": "weighted", "alpha": alpha}
    elif rrf_k is not None:
        fusion = {"method": "rrf", "k": rrf_k}
    if isinstance(expand, int) and not isinstance(expand, bool):
        expand = {"neighbors": expand}
    if isinstance(rerank, int) and not isinstance(rerank, bool):
        rerank = {"top_n": rerank}
    if isinstance(diversify, (int, float)) and not isinstance(diversify, bool):
        diversify = {"lambda": diversify}
    values = dict(
        top_k=top_k,
        mode=mode,
        group_by=group_by,
        fusion=fusion,
        filter=filter,
        facets=list(facets) if facets is not None else None,
        include=list(include) if include is not None else None,
        offset=offset,
        min_score=min_score,
        explain=explain,
        vector=list(vector) if vector is not None else None,
        embedding_version=embedding_version,
        highlight=highlight,
        citation=citation,
        expand=expand,
        rerank=rerank,
        diversify=diversify,
        feedback=feedback,
    )
    body: Json = {}
    if query is not None:
        body["query"] = query
    for k in _QUERY_FIELDS:
        if values[k] is not None:
            body[k] = values[k]
    return body


def _retry_after(resp: httpx.Response) -> Optional[float]:
    v = resp.headers.get("retry-after")
    if not v:
        return None
    try:
        return max(0.0, float(v))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(v)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# POST routes that change nothing (or nothing twice): safe to send again.
_SAFE_POST_SUFFIXES = ("/query", "/query/batch", "/embeddings")


def _retryable(e: httpx.TransportError, method: str, path: str) -> bool:
    """Transport failures worth one more try: a refused connection (nothing was sent), or a
    connection the server dropped without answering, for requests that may be sent twice
    (idempotent methods, and read-only POSTs such as queries). A dropped connection can also
    mean the server processed the request and died before answering, so a snapshot, a
    re-index, an eval run or an activation is never sent again."""
    if isinstance(e, httpx.ConnectError):
        return True
    if isinstance(e, httpx.RemoteProtocolError):
        return method.upper() in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS") or (
            method.upper() == "POST" and path.split("?")[0].endswith(_SAFE_POST_SUFFIXES)
        )
    return False


def _raise_for(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    try:
        body: Any = resp.json()
    except ValueError:
        body = resp.text
    raise error_from_response(
        resp.status_code,
        body,
        request_id=resp.headers.get("x-request-id"),
        retry_after=_retry_after(resp),
    )


def _json(resp: httpx.Response) -> Any:
    if not resp.content:
        return None
    return resp.json()


class _Routes:
    """Every route, once. Subclasses provide ``_call(method, path, parse, json=, params=)``."""

    def _call(
        self,
        method: str,
        path: str,
        parse: Callable[[Any], Any],
        *,
        json: Any = None,
        params: Optional[Mapping[str, Any]] = None,
    ) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- health ------------------------------------------------------------------------------
    def health(self) -> Any:
        """``GET /healthz``: ``{"status": "ok"}``."""
        return self._call("GET", "/healthz", lambda d: d)

    def ready(self) -> Any:
        """``GET /readyz``: ``{"status": "ready"}`` (raises ``ServiceUnavailableError`` before)."""
        return self._call("GET", "/readyz", lambda d: d)

    # -- collections ---------------------------------------------------------------------------
    def list_collections(self) -> Any:
        """Every collection the caller may see, with its stats."""
        return self._call(
            "GET", "/v1/collections", lambda d: [Collection.from_json(c) for c in d["collections"]]
        )

    def get_collection(self, name: str) -> Any:
        return self._call("GET", f"/v1/collections/{_seg(name)}", Collection.from_json)

    def create_collection(
        self, name: str, *, chunk: Optional[Json] = None, embedder: Optional[str] = None
    ) -> Any:
        """``PUT /v1/collections/{c}`` (admin): idempotent for the same settings, 409 otherwise."""
        body: Json = {}
        if chunk is not None:
            body["chunk"] = chunk
        if embedder is not None:
            body["embedder"] = embedder
        return self._call("PUT", f"/v1/collections/{_seg(name)}", Collection.from_json, json=body)

    def delete_collection(self, name: str) -> Any:
        """``DELETE /v1/collections/{c}`` (admin): ``{"name", "documents", "chunks", "vectors_erased"}``."""
        return self._call("DELETE", f"/v1/collections/{_seg(name)}", lambda d: d)

    # -- queries -------------------------------------------------------------------------------
    def query(self, collection: str, query: Optional[str] = None, **options: Any) -> Any:
        """Search a collection. Options: see :func:`build_query` and docs/query.md."""
        body = build_query(query, **options)
        return self._call(
            "POST", f"/v1/collections/{_seg(collection)}/query", QueryResponse.from_json, json=body
        )

    def query_batch(self, collection: str, queries: Iterable[Union[str, Json]]) -> Any:
        """Several queries in one request; each is a text or a query body (see :func:`build_query`).
        Returns one ``QueryResponse`` per query, in order. All or nothing: one bad query is a 400."""
        qs = [{"query": q} if isinstance(q, str) else dict(q) for q in queries]
        return self._call(
            "POST",
            f"/v1/collections/{_seg(collection)}/query/batch",
            lambda d: [QueryResponse.from_json(a) for a in d["answers"]],
            json={"queries": qs},
        )

    # -- documents -----------------------------------------------------------------------------
    def put_documents(
        self, collection: str, documents: Iterable[Document], *, wait: bool = True
    ) -> Any:
        """Upsert documents (``{"_id" or "id", "title"?, "text", "acl"?, "metadata"?}``); creates
        the collection. Returns a ``WriteSummary``; with ``wait=False`` a ``Task`` to poll."""
        docs = [dict(d) for d in documents]
        if wait:
            return self._call(
                "POST",
                f"/v1/collections/{_seg(collection)}/documents",
                WriteSummary.from_json,
                json={"documents": docs},
            )
        return self._call(
            "POST",
            f"/v1/collections/{_seg(collection)}/documents",
            Task.from_json,
            json={"documents": docs},
            params={"wait": "false"},
        )

    def get_task(self, task_id: str) -> Any:
        return self._call("GET", f"/v1/tasks/{_seg(task_id)}", Task.from_json)

    def get_document(self, collection: str, doc_id: Union[str, int]) -> Any:
        return self._call(
            "GET",
            f"/v1/collections/{_seg(collection)}/documents/{_seg(doc_id)}",
            DocumentInfo.from_json,
        )

    def list_documents(
        self, collection: str, *, after: Optional[str] = None, limit: Optional[int] = None
    ) -> Any:
        """One page of documents (without texts), in id order; ``next_after`` is the next page's
        ``after`` (``None`` at the end)."""
        params: Dict[str, Any] = {}
        if after is not None:
            params["after"] = after
        if limit is not None:
            params["limit"] = limit
        return self._call(
            "GET",
            f"/v1/collections/{_seg(collection)}/documents",
            DocumentPage.from_json,
            params=params,
        )

    def delete_document(self, collection: str, doc_id: Union[str, int], *, forget: bool = False) -> Any:
        """Delete one document; ``forget=True`` (admin) erases every copy of it."""
        return self._call(
            "DELETE",
            f"/v1/collections/{_seg(collection)}/documents/{_seg(doc_id)}",
            lambda d: d,
            params={"forget": "true"} if forget else None,
        )

    # -- embedding versions and jobs -------------------------------------------------------------
    def list_versions(self, collection: str) -> Any:
        return self._call(
            "GET",
            f"/v1/collections/{_seg(collection)}/versions",
            lambda d: [EmbeddingVersion.from_json(v) for v in d["versions"]],
        )

    def activate_version(self, collection: str, version: str) -> Any:
        return self._call(
            "POST",
            f"/v1/collections/{_seg(collection)}/versions/{_seg(version)}/activate",
            lambda d: EmbeddingVersion.from_json(d.get("version", d)),
        )

    def retire_version(self, collection: str, version: str) -> Any:
        return self._call(
            "POST",
            f"/v1/collections/{_seg(collection)}/versions/{_seg(version)}/retire",
            lambda d: d,
        )

    def reindex(
        self,
        collection: str,
        *,
        embedder: Optional[str] = None,
        chunk: Optional[Json] = None,
        quantization: Optional[str] = None,
        rebuild_index: Optional[bool] = None,
    ) -> Any:
        """Queue a re-index (``embedder``), re-chunk (``chunk``), requantize (``quantization``)
        or index rebuild (``rebuild_index=True``) job; returns the ``Job``."""
        body: Json = {}
        for k, v in (
            ("embedder", embedder),
            ("chunk", chunk),
            ("quantization", quantization),
            ("rebuild_index", rebuild_index),
        ):
            if v is not None:
                body[k] = v
        return self._call(
            "POST",
            f"/v1/collections/{_seg(collection)}/reindex",
            lambda d: Job.from_json(d["job"]),
            json=body,
        )

    def list_jobs(self) -> Any:
        return self._call("GET", "/v1/jobs", lambda d: [Job.from_json(j) for j in d["jobs"]])

    def get_job(self, job_id: str) -> Any:
        return self._call("GET", f"/v1/jobs/{_seg(job_id)}", Job.from_json)

    def cancel_job(self, job_id: str) -> Any:
        """Cancel a job: a queued one at once, a running one at its next batch; returns the job."""
        return self._call("POST", f"/v1/jobs/{_seg(job_id)}/cancel", Job.from_json)

    # -- golden sets and eval runs ---------------------------------------------------------------
    def list_golden(self, collection: str) -> Any:
        return self._call(
            "GET",
            f"/v1/collections/{_seg(collection)}/golden",
            lambda d: [GoldenSet.from_json(g) for g in d["golden_sets"]],
        )

    def put_golden(self, collection: str, name: str, queries: Iterable[Json]) -> Any:
        """Store a golden set: ``[{"id"?, "query", "relevant": {doc_id: grade}}]``."""
        return self._call(
            "PUT",
            f"/v1/collections/{_seg(collection)}/golden/{_seg(name)}",
            lambda d: d,
            json={"queries": list(queries)},
        )

    def delete_golden(self, collection: str, name: str) -> Any:
        return self._call(
            "DELETE", f"/v1/collections/{_seg(collection)}/golden/{_seg(name)}", lambda d: d
        )

    def run_eval(
        self,
        collection: str,
        golden: str,
        *,
        modes: Optional[Sequence[str]] = None,
        fusion: Optional[Json] = None,
        top_k: Optional[int] = None,
        rerank_top_n: Optional[int] = None,
        as_user: Optional[str] = None,
        as_groups: Optional[Sequence[str]] = None,
    ) -> Any:
        """Run a golden set against the collection and record the run (admin)."""
        body: Json = {"golden": golden}
        if modes is not None:
            body["modes"] = list(modes)
        if fusion is not None:
            body["fusion"] = fusion
        if top_k is not None:
            body["top_k"] = top_k
        if rerank_top_n is not None:
            body["rerank_top_n"] = rerank_top_n
        if as_user is not None:
            body["as"] = {"user": as_user, "groups": list(as_groups or [])}
        return self._call(
            "POST", f"/v1/collections/{_seg(collection)}/eval", EvalRun.from_json, json=body
        )

    def list_eval_runs(self, collection: str) -> Any:
        return self._call(
            "GET",
            f"/v1/collections/{_seg(collection)}/eval/runs",
            lambda d: [EvalRun.from_json(r) for r in d["runs"]],
        )

    def compare_eval_runs(
        self, collection: str, base: str, run: str, *, mode: Optional[str] = None
    ) -> Any:
        """Run ``run`` compared with the baseline ``base`` (the JSON of ``quarry eval compare --json``)."""
        params = {"base": base, "run": run}
        if mode is not None:
            params["mode"] = mode
        return self._call(
            "GET", f"/v1/collections/{_seg(collection)}/eval/compare", lambda d: d, params=params
        )

    # -- snapshots -----------------------------------------------------------------------------
    def create_snapshot(self, name: Optional[str] = None) -> Any:
        """``POST /v1/snapshots`` (admin): a consistent copy of the data directory into the
        server's ``server.snapshot_dir``, under ``name`` (default: the UTC time). Returns
        ``{"name", "path", "created_at", "collections", "files", "bytes", "seconds"}``."""
        return self._call(
            "POST", "/v1/snapshots", lambda d: d, json={"name": name} if name is not None else {}
        )

    # -- embeddings ----------------------------------------------------------------------------
    def embed(self, texts: Union[str, Sequence[str]], *, model: str) -> Any:
        """``POST /v1/embeddings`` (OpenAI's format) with the server's default embedder: one
        vector per text. ``model`` is the embedder's model (``all-MiniLM-L6-v2``) or its
        configured name (``local``); another is 404 ``model_not_found``, whose message names
        the one served."""
        inp = texts if isinstance(texts, str) else list(texts)
        return self._call(
            "POST",
            "/v1/embeddings",
            lambda d: [e["embedding"] for e in sorted(d["data"], key=lambda e: e["index"])],
            json={"model": model, "input": inp},
        )


class _Config:
    def __init__(
        self,
        url: Optional[str],
        token: Optional[str],
        timeout: Union[float, httpx.Timeout, None],
        max_retries: int,
        backoff: float,
        max_backoff: float,
        headers: Optional[Mapping[str, str]],
    ) -> None:
        self.url = (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.headers = {"user-agent": "quarry-rag-client/0.1"}
        if self.token:
            self.headers["authorization"] = f"Bearer {self.token}"
        if headers:
            self.headers.update(headers)

    def delay(self, attempt: int, err: Optional[APIError]) -> float:
        """Seconds to wait before retry ``attempt`` (1-based): the server's ``Retry-After`` when
        it sent one, else exponential backoff with jitter."""
        if err is not None and err.retry_after is not None:
            return min(err.retry_after, self.max_backoff)
        base = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        return base * (0.5 + random.random() / 2)

    def transport_delay(self, attempt: int, e: httpx.TransportError) -> float:
        """A closed pooled connection is retried at once on a new one; a refused connection
        waits like a 503."""
        if isinstance(e, httpx.RemoteProtocolError) and attempt == 1:
            return 0.0
        return self.delay(attempt, None)


class QuarryClient(_Routes):
    """A synchronous client.

    ``url`` defaults to ``$QUARRY_URL`` then ``http://127.0.0.1:7878``; ``token`` to
    ``$QUARRY_TOKEN`` (sent as ``Authorization: Bearer``). ``timeout`` is httpx's (seconds, or
    an ``httpx.Timeout``). Answers 429 and 503, refused connections and pooled connections the
    server closed without answering, are retried up to
    ``max_retries`` times, waiting ``Retry-After`` when the server sends it, else
    ``backoff · 2^n`` seconds with jitter (at most ``max_backoff``).
    """

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: Union[float, httpx.Timeout, None] = 30.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        headers: Optional[Mapping[str, str]] = None,
        http_client: Optional[httpx.Client] = None,
    ) -> None:
        self._cfg = _Config(url, token, timeout, max_retries, backoff, max_backoff, headers)
        self._http = http_client or httpx.Client(timeout=timeout)
        self._owns_http = http_client is None

    @property
    def url(self) -> str:
        return self._cfg.url

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> "QuarryClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, method, path, parse, *, json=None, params=None):  # type: ignore[override]
        cfg = self._cfg
        attempt = 0
        while True:
            try:
                resp = self._http.request(
                    method, cfg.url + path, json=json, params=params, headers=cfg.headers
                )
            except httpx.TransportError as e:
                if _retryable(e, method, path) and attempt < cfg.max_retries:
                    attempt += 1
                    time.sleep(cfg.transport_delay(attempt, e))
                    continue
                raise QuarryConnectionError(f"{method} {cfg.url}{path}: {e}") from e
            try:
                _raise_for(resp)
            except APIError as err:
                if err.status in RETRY_STATUSES and attempt < cfg.max_retries:
                    attempt += 1
                    time.sleep(cfg.delay(attempt, err))
                    continue
                raise
            return parse(_json(resp))

    # -- helpers with logic of their own -----------------------------------------------------------
    def iter_documents(self, collection: str, *, page_size: int = 1000) -> Iterator[DocumentInfo]:
        """Every document the caller may read, page by page."""
        after: Optional[str] = None
        while True:
            page = self.list_documents(collection, after=after, limit=page_size)
            yield from page.documents
            if page.next_after is None:
                return
            after = page.next_after

    def wait_task(self, task_id: str, *, poll: float = 0.2, timeout: Optional[float] = None) -> Task:
        """Poll a task until it is no longer running."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            t = self.get_task(task_id)
            if t.done:
                return t
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} still running after {timeout}s")
            time.sleep(poll)

    def wait_job(self, job_id: str, *, poll: float = 0.2, timeout: Optional[float] = None) -> Job:
        """Poll a job until it has succeeded, failed or been cancelled."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            j = self.get_job(job_id)
            if j.done:
                return j
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {j.state} after {timeout}s")
            time.sleep(poll)


class AsyncQuarryClient(_Routes):
    """The asynchronous client: the same methods as :class:`QuarryClient`, awaited."""

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: Union[float, httpx.Timeout, None] = 30.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        headers: Optional[Mapping[str, str]] = None,
        http_client: Optional[httpx.AsyncClient] = None,
    ) -> None:
        self._cfg = _Config(url, token, timeout, max_retries, backoff, max_backoff, headers)
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self._owns_http = http_client is None

    @property
    def url(self) -> str:
        return self._cfg.url

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> "AsyncQuarryClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def _call(self, method, path, parse, *, json=None, params=None):  # type: ignore[override]
        cfg = self._cfg
        attempt = 0
        while True:
            try:
                resp = await self._http.request(
                    method, cfg.url + path, json=json, params=params, headers=cfg.headers
                )
            except httpx.TransportError as e:
                if _retryable(e, method, path) and attempt < cfg.max_retries:
                    attempt += 1
                    await asyncio.sleep(cfg.transport_delay(attempt, e))
                    continue
                raise QuarryConnectionError(f"{method} {cfg.url}{path}: {e}") from e
            try:
                _raise_for(resp)
            except APIError as err:
                if err.status in RETRY_STATUSES and attempt < cfg.max_retries:
                    attempt += 1
                    await asyncio.sleep(cfg.delay(attempt, err))
                    continue
                raise
            return parse(_json(resp))

    async def iter_documents(
        self, collection: str, *, page_size: int = 1000
    ) -> AsyncIterator[DocumentInfo]:
        after: Optional[str] = None
        while True:
            page = await self.list_documents(collection, after=after, limit=page_size)
            for d in page.documents:
                yield d
            if page.next_after is None:
                return
            after = page.next_after

    async def wait_task(
        self, task_id: str, *, poll: float = 0.2, timeout: Optional[float] = None
    ) -> Task:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            t = await self.get_task(task_id)
            if t.done:
                return t
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} still running after {timeout}s")
            await asyncio.sleep(poll)

    async def wait_job(
        self, job_id: str, *, poll: float = 0.2, timeout: Optional[float] = None
    ) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            j = await self.get_job(job_id)
            if j.done:
                return j
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {j.state} after {timeout}s")
            await asyncio.sleep(poll)
