"""Fixtures: real `quarry serve` processes (hash embedder, so no model is needed), each on a
temporary data directory and a free port, started once per test session.

The binary is `$QUARRY_BIN` (scripts/python-tests.sh builds it and sets it).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import httpx
import pytest

from quarry_client import QuarryClient

# The servers listen on loopback: never send their requests through a configured proxy.
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = ",".join(x for x in (os.environ.get(_var), "127.0.0.1", "localhost") if x)

# quarry reads a QUARRY_* variable it does not know (QUARRY_BIN, QUARRY_URL...) as a
# configuration key and refuses it, and the tests' servers must not take settings from the
# caller's environment: no QUARRY_* variable reaches them but the log filter.


def quarry_env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUARRY_")}
    # The fixture reads the "listening on" line, logged at info by quarry::cmd::serve.
    env["QUARRY_LOG"] = "warn,quarry::cmd::serve=info"
    return env


def quarry_bin() -> str:
    path = os.environ.get("QUARRY_BIN")
    if not path:
        pytest.exit("set QUARRY_BIN to a built quarry binary (scripts/python-tests.sh does)", 2)
    if not os.access(path, os.X_OK):
        pytest.exit(f"QUARRY_BIN={path} is not an executable file", 2)
    return path


def sha256(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


@dataclass
class Server:
    url: str
    data_dir: Path
    proc: subprocess.Popen
    log: List[str] = field(default_factory=list)
    tokens: Dict[str, str] = field(default_factory=dict)
    md_folder: Optional[Path] = None

    def client(self, role: Optional[str] = None, **kw) -> QuarryClient:
        token = self.tokens[role] if role else None
        return QuarryClient(self.url, token, **kw)


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, be killed when the test process dies, so a
    killed test run leaves no server behind."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def start_server(config: str, name: str) -> Server:
    data_dir = Path(tempfile.mkdtemp(prefix=f"quarry-py-{name}-"))
    (data_dir / "quarry.toml").write_text(config)
    proc = subprocess.Popen(
        [quarry_bin(), "serve", "--data-dir", str(data_dir), "--addr", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=quarry_env(),
        preexec_fn=_die_with_parent,
    )
    log: List[str] = []
    found = threading.Event()
    url_box: List[str] = []

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)
            m = re.search(r"listening on (http://\S+)", line)
            if m and not found.is_set():
                url_box.append(m.group(1))
                found.set()
        found.set()

    threading.Thread(target=pump, daemon=True).start()
    if not found.wait(60) or not url_box:
        proc.kill()
        shutil.rmtree(data_dir, ignore_errors=True)
        raise RuntimeError(f"quarry serve did not start:\n{''.join(log)}")
    url = url_box[0]
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            shutil.rmtree(data_dir, ignore_errors=True)
            raise RuntimeError(f"quarry serve never became ready:\n{''.join(log)}")
        time.sleep(0.05)
    return Server(url=url, data_dir=data_dir, proc=proc, log=log)


def stop_server(s: Server) -> None:
    s.proc.terminate()
    try:
        s.proc.wait(15)
    except subprocess.TimeoutExpired:
        s.proc.kill()
        s.proc.wait()
    shutil.rmtree(s.data_dir, ignore_errors=True)
    if s.md_folder is not None:
        shutil.rmtree(s.md_folder, ignore_errors=True)


# A small corpus: enough documents for paging, filters, facets and k = 3 retrievals.
CORPUS = [
    {
        "_id": "guides/wal.md",
        "title": "Write-ahead logging",
        "text": "The write-ahead log records every change before it reaches the data files. "
        "A checkpoint flushes the log so that recovery after a crash replays little.",
        "metadata": {"year": 2023, "tags": ["storage", "durability"], "team": "core"},
    },
    {
        "_id": "guides/rrf.md",
        "title": "Reciprocal rank fusion",
        "text": "Reciprocal rank fusion combines the rankings of BM25 and vector retrieval "
        "by summing one over k plus rank for each retriever.",
        "metadata": {"year": 2024, "tags": ["retrieval"], "team": "search"},
    },
    {
        "_id": "guides/bm25.md",
        "title": "BM25 scoring",
        "text": "BM25 scores a document by term frequency and inverse document frequency, "
        "with length normalisation. Retrieval with BM25 is fast and exact on keywords.",
        "metadata": {"year": 2022, "tags": ["retrieval", "ranking"], "team": "search"},
    },
    {
        "_id": "guides/hnsw.md",
        "title": "HNSW graphs",
        "text": "Vector retrieval walks a hierarchical navigable small world graph to find "
        "the nearest neighbours of the query embedding.",
        "metadata": {"year": 2024, "tags": ["retrieval", "vectors"], "team": "search"},
    },
    {
        "_id": "ops/restart.md",
        "title": "Restarting a node",
        "text": "Drain the node, wait for in-flight requests, then restart it. The write-ahead "
        "log makes the restart safe.",
        "metadata": {"year": 2021, "tags": ["ops"], "team": "ops"},
    },
    {
        "_id": "ops/compaction.md",
        "title": "Compaction",
        "text": "Compaction merges index segments and drops deleted documents, which makes "
        "retrieval faster and frees disk space.",
        "metadata": {"year": 2023, "tags": ["ops", "storage"], "team": "ops"},
    },
]

# A long Markdown document for highlights, citations with heading paths and context expansion.
LONG_DOC = {
    "_id": "manual.md",
    "title": "Operations manual",
    "text": "# Manual\n\nIntro text about the system.\n\n## Backups\n\n"
    + " ".join(f"Backup step {i} copies the snapshot folder to cold storage." for i in range(12))
    + "\n\n## Upgrades\n\n"
    + " ".join(f"Upgrade step {i} replaces the binary and restarts the service." for i in range(12)),
    "metadata": {"year": 2020, "tags": ["ops", "manual"], "team": "ops"},
}

DOCS = "docs"
MD = "md"

# Markdown files ingested with the CLI (`quarry ingest`): their chunks have heading paths and
# their source is the file's path.
MARKDOWN = {
    "manual.md": LONG_DOC["text"],
    "faq/restore.md": "# FAQ\n\n## Restore\n\nRestore a snapshot by copying its folder back "
    "and starting quarry on it.\n",
}


def cli_ingest(s: "Server", folder: Path, collection: str) -> None:
    out = subprocess.run(
        [quarry_bin(), "ingest", "--data-dir", str(s.data_dir), "--collection", collection, str(folder)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=quarry_env(),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="session")
def server():
    """An open server (no authentication: every caller is the local admin) with the collection
    `docs` holding CORPUS and LONG_DOC, written through the documents API, and the collection
    `md` holding MARKDOWN, ingested from files with the CLI beside the running server."""
    s = start_server('embedder = "hash"\n', "open")
    with s.client() as c:
        summary = c.put_documents(DOCS, CORPUS + [LONG_DOC])
        assert summary.added == len(CORPUS) + 1, summary
    folder = s.data_dir.parent / (s.data_dir.name + "-md")
    for rel, text in MARKDOWN.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    s.md_folder = folder
    cli_ingest(s, folder, MD)
    yield s
    stop_server(s)


JWT_SECRET = "pytest-secret-" + "s" * 40


def make_jwt(claims: dict) -> str:
    """An HS256 JWT signed with JWT_SECRET (by hand: no JWT library needed)."""
    import base64
    import hmac
    import json

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(JWT_SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


@pytest.fixture(scope="session")
def auth_server():
    """A server with API keys for an admin, a writer and a reader (group `eng`), and HS256 JWTs
    (`jwt-reader`, and `jwt-expired`, refused); the collection
    `acl` holds one document readable by group:eng and one by admins only."""
    tokens = {
        "admin": "admin-" + "a" * 40,
        "writer": "writer-" + "b" * 40,
        "reader": "reader-" + "c" * 40,
    }
    config = 'embedder = "hash"\n'
    for role, token in tokens.items():
        config += (
            f'\n[[auth.api_keys]]\nkey_sha256 = "{sha256(token)}"\nuser = "{role}-user"\n'
            f'groups = ["eng"]\nrole = "{role}"\n'
        )
    config += '\n[auth.jwt]\nhs256_secret_env = "PYTEST_QUARRY_JWT_SECRET"\n'
    os.environ["PYTEST_QUARRY_JWT_SECRET"] = JWT_SECRET
    s = start_server(config, "auth")
    tokens["jwt-reader"] = make_jwt({"sub": "jwt-user", "groups": ["eng"], "role": "reader", "exp": int(time.time()) + 3600})
    tokens["jwt-expired"] = make_jwt({"sub": "jwt-user", "role": "reader", "exp": int(time.time()) - 3600})
    s.tokens = tokens
    with s.client("admin") as c:
        c.put_documents(
            "acl",
            [
                {"_id": "public-note", "text": "the eng team runbook for deploys", "acl": ["group:eng"]},
                {"_id": "secret-note", "text": "the board runbook for deploys", "acl": []},
            ],
        )
    yield s
    stop_server(s)


@pytest.fixture
def client(server):
    with server.client() as c:
        yield c
