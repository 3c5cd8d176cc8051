"""Python client of the quarry retrieval engine (distribution ``quarry-rag-client``).

Sync: :class:`QuarryClient`; async: :class:`AsyncQuarryClient`. LangChain integrations in
:mod:`quarry_client.langchain`, LlamaIndex in :mod:`quarry_client.llama_index` (each needs
its framework installed: the ``langchain`` / ``llama-index`` extras).
"""

from ._client import (
    DEFAULT_URL,
    RETRY_STATUSES,
    TOKEN_ENV,
    URL_ENV,
    AsyncQuarryClient,
    QuarryClient,
    build_query,
)
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    CollectionNotFoundError,
    ConflictError,
    DocumentNotFoundError,
    GatewayTimeoutError,
    InternalServerError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    QuarryConnectionError,
    QuarryError,
    RateLimitedError,
    ServiceUnavailableError,
)
from .types import (
    Citation,
    Collection,
    DocumentInfo,
    DocumentPage,
    EmbeddingVersion,
    EvalRun,
    FacetValue,
    GoldenSet,
    Hit,
    Job,
    Passage,
    QueryResponse,
    Task,
    WriteSummary,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_URL",
    "RETRY_STATUSES",
    "TOKEN_ENV",
    "URL_ENV",
    "AsyncQuarryClient",
    "QuarryClient",
    "build_query",
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "CollectionNotFoundError",
    "ConflictError",
    "DocumentNotFoundError",
    "GatewayTimeoutError",
    "InternalServerError",
    "MethodNotAllowedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "QuarryConnectionError",
    "QuarryError",
    "RateLimitedError",
    "ServiceUnavailableError",
    "Citation",
    "Collection",
    "DocumentInfo",
    "DocumentPage",
    "EmbeddingVersion",
    "EvalRun",
    "FacetValue",
    "GoldenSet",
    "Hit",
    "Job",
    "Passage",
    "QueryResponse",
    "Task",
    "WriteSummary",
]
