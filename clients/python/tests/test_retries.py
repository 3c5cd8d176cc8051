"""Retries on 429 and 503, honouring Retry-After. quarry cannot be made to answer 429 (a proxy
in front of it would) nor, on demand, 503, so these drive the client's retry loop through an
httpx transport that answers as a proxy or a busy server would; the API itself is tested
against a real server in the other files."""

from __future__ import annotations

import time

import httpx
import pytest

from quarry_client import AsyncQuarryClient, QuarryClient, RateLimitedError, ServiceUnavailableError


def flaky(statuses, retry_after=None):
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((time.monotonic(), request))
        if len(calls) <= len(statuses):
            code = statuses[len(calls) - 1]
            headers = {"retry-after": retry_after} if retry_after is not None else {}
            body = {"error": {"code": "busy" if code == 503 else "rate_limited", "message": "slow down"}}
            return httpx.Response(code, json=body, headers=headers)
        return httpx.Response(200, json={"status": "ok"})

    return handler, calls


def test_retries_then_succeeds_honouring_retry_after():
    handler, calls = flaky([429, 503], retry_after="0.3")
    http = httpx.Client(transport=httpx.MockTransport(handler))
    c = QuarryClient("http://quarry.test", max_retries=3, backoff=5.0, http_client=http)
    assert c.health() == {"status": "ok"}
    assert len(calls) == 3
    gaps = [b[0] - a[0] for a, b in zip(calls, calls[1:])]
    # Retry-After (0.3 s) is waited, not the 5 s backoff.
    assert all(0.25 <= g < 2.0 for g in gaps), gaps


def test_gives_up_after_max_retries_with_the_servers_code():
    handler, calls = flaky([503] * 10)
    http = httpx.Client(transport=httpx.MockTransport(handler))
    c = QuarryClient("http://quarry.test", max_retries=2, backoff=0.01, http_client=http)
    with pytest.raises(ServiceUnavailableError) as e:
        c.health()
    assert (e.value.status, e.value.code, e.value.message) == (503, "busy", "slow down")
    assert len(calls) == 3


def test_no_retry_when_disabled():
    handler, calls = flaky([429])
    http = httpx.Client(transport=httpx.MockTransport(handler))
    c = QuarryClient("http://quarry.test", max_retries=0, http_client=http)
    with pytest.raises(RateLimitedError):
        c.health()
    assert len(calls) == 1


async def test_async_retries():
    handler, calls = flaky([503], retry_after="0")
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    c = AsyncQuarryClient("http://quarry.test", http_client=http)
    assert await c.health() == {"status": "ok"}
    assert len(calls) == 2
    await http.aclose()


def test_connection_refused_is_retried_then_raised():
    # Connection refused is retried too: a client of a port nothing listens on fails after its
    # retries with QuarryConnectionError.
    from quarry_client import QuarryConnectionError

    c = QuarryClient("http://127.0.0.1:9", max_retries=1, backoff=0.01, timeout=2)
    with pytest.raises(QuarryConnectionError):
        c.health()


def dropping(times):
    """A transport that drops the connection without an answer `times` times, then answers."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) <= times:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return httpx.Response(200, json={"results": [], "snapshot": "s1"})

    return handler, calls


def test_a_dropped_connection_is_retried_only_for_requests_that_may_run_twice():
    from quarry_client import QuarryConnectionError

    handler, calls = dropping(1)
    c = QuarryClient("http://quarry.test", max_retries=2, backoff=0.01,
                     http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    c.query("docs", "kettle")  # a query changes nothing: sent again
    assert [r.method for r in calls] == ["POST", "POST"]

    handler, calls = dropping(1)
    c = QuarryClient("http://quarry.test", max_retries=2, backoff=0.01,
                     http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    with pytest.raises(QuarryConnectionError):
        c.create_snapshot("s1")  # the server may have taken it before it died: not sent twice
    assert len(calls) == 1
