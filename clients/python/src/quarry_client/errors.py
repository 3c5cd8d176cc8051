"""Errors raised by the client: one exception per HTTP status family, each carrying the
server's error ``code`` and ``message`` (the body ``{"error": {"code", "message"}}``)."""

from __future__ import annotations

from typing import Any, Dict, Optional, Type


class QuarryError(Exception):
    """Base of every error the client raises."""


class QuarryConnectionError(QuarryError):
    """The server could not be reached (after the retries), or the request timed out client-side."""


class APIError(QuarryError):
    """The server answered with an error status.

    ``status`` is the HTTP status, ``code`` the server's error code (``collection_not_found``,
    ``invalid_request``, ``unauthorized``...), ``message`` its message, ``request_id`` the
    ``x-request-id`` the server logged the request under, ``retry_after`` the seconds the server
    asked to wait (``Retry-After``), when it sent one.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        request_id: Optional[str] = None,
        retry_after: Optional[float] = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = body


class BadRequestError(APIError):
    """400: ``invalid_request`` or ``invalid_json``."""


class AuthenticationError(APIError):
    """401 ``unauthorized``: no token, or one the server does not accept."""


class PermissionDeniedError(APIError):
    """403 ``forbidden``: the caller's role does not allow the route."""


class NotFoundError(APIError):
    """404: ``collection_not_found``, ``document_not_found``, ``task_not_found``, ``not_found``..."""


class CollectionNotFoundError(NotFoundError):
    """404 ``collection_not_found``."""


class DocumentNotFoundError(NotFoundError):
    """404 ``document_not_found``."""


class MethodNotAllowedError(APIError):
    """405 ``method_not_allowed``."""


class ConflictError(APIError):
    """409 ``conflict``."""


class PayloadTooLargeError(APIError):
    """413 ``payload_too_large``."""


class RateLimitedError(APIError):
    """429 (from a proxy in front of quarry; quarry itself answers 503 ``busy``)."""


class ServiceUnavailableError(APIError):
    """503: ``busy``, ``not_ready``, ``embedding_unavailable`` or ``cancelled``."""


class GatewayTimeoutError(APIError):
    """504 ``timeout``: the request ran past the server's ``server.request_timeout_ms``."""


class InternalServerError(APIError):
    """500 ``internal`` (or any other 5xx)."""


_BY_STATUS: Dict[int, Type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    409: ConflictError,
    413: PayloadTooLargeError,
    429: RateLimitedError,
    503: ServiceUnavailableError,
    504: GatewayTimeoutError,
}

_BY_CODE: Dict[str, Type[APIError]] = {
    "collection_not_found": CollectionNotFoundError,
    "document_not_found": DocumentNotFoundError,
}


def error_from_response(
    status: int, body: Any, *, request_id: Optional[str] = None, retry_after: Optional[float] = None
) -> APIError:
    """The exception for an error answer: its class from the code (or else the status)."""
    code, message = "", ""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = str(body["error"].get("code", ""))
        message = str(body["error"].get("message", ""))
    elif isinstance(body, str):
        message = body
    if not code:
        code = "http_%d" % status
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if cls is None:
        cls = InternalServerError if status >= 500 else APIError
    return cls(status, code, message, request_id=request_id, retry_after=retry_after, body=body)
