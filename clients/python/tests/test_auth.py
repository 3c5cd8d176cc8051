"""Tokens: from the argument or $QUARRY_TOKEN; 401 without one, 403 for a role too low, and a
reader's answers limited to its ACL."""

from __future__ import annotations

import pytest

from quarry_client import (
    AsyncQuarryClient,
    AuthenticationError,
    PermissionDeniedError,
    QuarryClient,
)


def test_no_token_is_401(auth_server, monkeypatch):
    monkeypatch.delenv("QUARRY_TOKEN", raising=False)
    with QuarryClient(auth_server.url) as c:
        with pytest.raises(AuthenticationError) as e:
            c.query("acl", "runbook")
        assert (e.value.status, e.value.code) == (401, "unauthorized")
        assert e.value.message
        # /healthz and /readyz stay open.
        assert c.ready() == {"status": "ready"}


def test_wrong_token_is_401(auth_server):
    with QuarryClient(auth_server.url, "not-a-key") as c:
        with pytest.raises(AuthenticationError):
            c.list_collections()


def test_token_and_url_from_the_environment(auth_server, monkeypatch):
    monkeypatch.setenv("QUARRY_URL", auth_server.url)
    monkeypatch.setenv("QUARRY_TOKEN", auth_server.tokens["reader"])
    with QuarryClient() as c:
        assert c.url == auth_server.url
        hits = c.query("acl", "runbook deploys", top_k=10)
        assert [h.doc_id for h in hits] == ["public-note"]


async def test_async_token_from_the_environment(auth_server, monkeypatch):
    monkeypatch.setenv("QUARRY_URL", auth_server.url)
    monkeypatch.setenv("QUARRY_TOKEN", auth_server.tokens["admin"])
    async with AsyncQuarryClient() as c:
        hits = await c.query("acl", "runbook deploys", top_k=10)
        assert {h.doc_id for h in hits} == {"public-note", "secret-note"}


def test_roles(auth_server):
    with auth_server.client("reader") as reader:
        with pytest.raises(PermissionDeniedError) as e:
            reader.put_documents("acl", [{"_id": "x", "text": "y"}])
        assert (e.value.status, e.value.code) == (403, "forbidden")
        assert [d.id for d in reader.iter_documents("acl")] == ["public-note"]
    with auth_server.client("writer") as writer:
        with pytest.raises(PermissionDeniedError):
            writer.create_collection("acl2")
        with pytest.raises(PermissionDeniedError):
            writer.list_jobs()
    with auth_server.client("admin") as admin:
        assert [v.active for v in admin.list_versions("acl")] == [True]
        assert admin.get_collection("acl").generation is not None


def test_jwt(auth_server):
    with auth_server.client("jwt-reader") as c:
        assert [h.doc_id for h in c.query("acl", "runbook deploys")] == ["public-note"]
    with auth_server.client("jwt-expired") as c:
        with pytest.raises(AuthenticationError) as e:
            c.query("acl", "runbook deploys")
        assert e.value.code == "unauthorized" and "expired" in e.value.message


def test_refusals_do_not_break_the_next_request(auth_server):
    # quarry closes the connection after a 401 or 403 answered before it read the body, without
    # saying so (no `connection: close`); a request sent on the pooled connection before the
    # close is seen gets no answer. The client sends it again on a new connection.
    with QuarryClient(auth_server.url, max_retries=1) as anonymous:
        for _ in range(60):
            with pytest.raises(AuthenticationError):
                anonymous.query("acl", "runbook")
            assert anonymous.ready() == {"status": "ready"}
    with auth_server.client("reader", max_retries=1) as reader:
        for _ in range(60):
            with pytest.raises(PermissionDeniedError):
                reader.put_documents("acl", [{"_id": "x", "text": "y"}])
            assert reader.ready() == {"status": "ready"}
