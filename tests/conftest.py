"""Shared fixtures: real Chroma and real Milvus Lite in temporary folders, a small real KB."""

from __future__ import annotations

import pytest

from helpers.kb import KnowledgeBase, knowledge_base

SMALL_KB = 120  # real chunks: the FAQ's first pages, embedded once (cached in data/cache)


@pytest.fixture(scope="session")
def small_kb() -> KnowledgeBase:
    """A real knowledge base of SMALL_KB chunks with its FAQ questions."""
    return knowledge_base(SMALL_KB, progress=False)


@pytest.fixture
def stores(tmp_path, small_kb):
    """Chroma and Milvus Lite, empty, in a temporary folder."""
    from helpers.stores import ChromaStore, MilvusStore

    chroma = ChromaStore(tmp_path / "chroma", "kb_test")
    milvus = MilvusStore(str(tmp_path / "milvus.db"), "kb_test")
    yield chroma, milvus
    milvus.close()
