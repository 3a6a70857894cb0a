"""Shared fixtures: real Chroma, real Milvus Lite and a real local Milvus server, a small real KB.

``milvus_uri`` runs a test twice: against a Milvus Lite file in a temporary folder and against
the local Milvus 2.3.5 server (started once per session, stopped at the end), where the
``milvus`` package's binaries can run here; elsewhere the server case is skipped, saying why.
"""

from __future__ import annotations

import socket
import uuid

import pytest

from helpers.kb import KnowledgeBase, knowledge_base

SMALL_KB = 120  # real chunks: the FAQ's first pages, embedded once (cached in data/cache)


@pytest.fixture(scope="session")
def small_kb() -> KnowledgeBase:
    """A real knowledge base of SMALL_KB chunks with its FAQ questions."""
    return knowledge_base(SMALL_KB, progress=False)


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """A local Milvus server for the whole session (skipped where it cannot run)."""
    from helpers.server import local_server, server_available

    if not server_available():
        pytest.skip('the local Milvus server cannot run here (pip install "milvus==2.3.5")')
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with local_server(tmp_path_factory.mktemp("milvus_server"), port=port) as server:
        yield server


@pytest.fixture(params=["lite", "server"])
def milvus_uri(request, tmp_path) -> str:
    """A Milvus URI: a fresh Lite file, or the session's local server."""
    if request.param == "lite":
        return str(tmp_path / "milvus.db")
    return request.getfixturevalue("milvus_server").uri


@pytest.fixture
def collection_name() -> str:
    """A collection name no other test uses (a server is shared by the whole session)."""
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def stores(tmp_path, milvus_uri, collection_name):
    """Chroma and Milvus (Lite or server), both empty."""
    from helpers.stores import ChromaStore, MilvusStore

    chroma = ChromaStore(tmp_path / "chroma", "kb_test")
    milvus = MilvusStore(milvus_uri, collection_name)
    yield chroma, milvus
    if milvus.mode == "server":
        milvus.client.drop_collection(collection_name)
    milvus.close()
