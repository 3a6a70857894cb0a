"""Both stores behind one interface, for real: Chroma on disk and Milvus Lite in a temp folder."""

import dataclasses

import numpy as np
import pytest

from helpers.errors import DataError, StoreError
from helpers.stores import ChromaStore, MilvusStore, connect_milvus


def test_same_interface_same_answers(stores, small_kb):
    chroma, milvus = stores
    for store in stores:
        assert store.add_documents(small_kb.chunks, small_kb.vectors, batch_size=50) == len(small_kb.chunks)
        assert store.count() == len(small_kb.chunks)
    q = small_kb.question_vectors[:10]
    res_c, res_m = chroma.search(q, k=5), milvus.search(q, k=5)
    for hits_c, hits_m in zip(res_c, res_m):
        assert [h.id for h in hits_c] == [h.id for h in hits_m]
        for a, b in zip(hits_c, hits_m):
            assert a.similarity == pytest.approx(b.similarity, abs=1e-4)
            assert a.raw == pytest.approx(1 - b.raw, abs=1e-4)  # distance vs similarity
            assert a.text == b.text and a.doc_id == b.doc_id and a.metadata["position"] == b.metadata["position"]
    # A chunk's own vector finds the chunk first.
    for store in stores:
        top = store.search(small_kb.vectors[:3], k=1)
        assert [r[0].id for r in top] == [c.id for c in small_kb.chunks[:3]]


def test_threshold_filters_on_similarity(stores, small_kb):
    for store in stores:
        store.add_documents(small_kb.chunks, small_kb.vectors)
        hits = store.search(small_kb.question_vectors[:5], k=10, threshold=0.5)
        assert all(h.similarity >= 0.5 for row in hits for h in row)
        assert sum(map(len, hits)) < 50


def test_upsert_is_idempotent(stores, small_kb):
    for store in stores:
        store.add_documents(small_kb.chunks[:30], small_kb.vectors[:30])
        store.add_documents(small_kb.chunks[:30], small_kb.vectors[:30])
        assert store.count() == 30


def test_delete_document_removes_every_chunk(stores, small_kb):
    doc = small_kb.chunks[0].doc_id
    mine = [i for i, c in enumerate(small_kb.chunks) if c.doc_id == doc]
    for store in stores:
        store.add_documents(small_kb.chunks, small_kb.vectors)
        assert store.delete_document(doc) == len(mine)
        assert store.count() == len(small_kb.chunks) - len(mine)
        hits = store.search(small_kb.vectors[mine], k=3)
        assert all(h.doc_id != doc for row in hits for h in row)
        assert store.delete_document("no/such-doc \"quoted\"") == 0


def test_bad_vectors_get_one_clear_sentence(stores, small_kb):
    chunks = small_kb.chunks[:2]
    for store in stores:
        with pytest.raises(DataError, match="512 dimensions but the collection expects 384"):
            store.add_documents(chunks, np.ones((2, 512), np.float32))
        bad = small_kb.vectors[:2].copy()
        bad[1, 3] = np.nan
        with pytest.raises(DataError, match=r"rows \[1\] contain NaN"):
            store.add_documents(chunks, bad)
        with pytest.raises(DataError, match="2 vectors for 1 chunks"):
            store.add_documents(chunks[:1], small_kb.vectors[:2])
        with pytest.raises(DataError, match="dimensions"):
            store.search(np.ones(10, np.float32))
        assert store.count() == 0


def test_over_long_text_is_refused_before_insert(stores, small_kb):
    _, milvus = stores
    huge = dataclasses.replace(small_kb.chunks[0], text="é" * 40_000)  # 80,000 bytes
    with pytest.raises(DataError, match="over Milvus's VARCHAR limit"):
        milvus.add_documents([huge], small_kb.vectors[:1])
    assert milvus.count() == 0


def test_reopening_finds_the_data(tmp_path, small_kb, milvus_uri, collection_name):
    first = MilvusStore(milvus_uri, collection_name)
    first.add_documents(small_kb.chunks[:20], small_kb.vectors[:20])
    first.client.release_collection(collection_name)
    first.close()
    again = MilvusStore(milvus_uri, collection_name, create=False)  # reopened: must be loaded
    assert again.count() == 20
    assert again.search(small_kb.vectors[:1], k=1)[0][0].id == small_kb.chunks[0].id
    again.close()
    ChromaStore(tmp_path / "c", "kb_test").add_documents(small_kb.chunks[:20], small_kb.vectors[:20])
    assert ChromaStore(tmp_path / "c", "kb_test", create=False).count() == 20


def test_missing_collection_or_path(tmp_path, milvus_uri):
    with pytest.raises(StoreError, match="no collection 'nope'"):
        MilvusStore(milvus_uri, "nope", create=False)
    with pytest.raises(StoreError, match="no Chroma database"):
        ChromaStore(tmp_path / "missing", create=False)
    ChromaStore(tmp_path / "c", "other_one")
    with pytest.raises(StoreError, match="no collection 'knowledge_base'"):
        ChromaStore(tmp_path / "c", create=False)


def test_unreachable_server_is_one_sentence():
    with pytest.raises(StoreError, match="Cannot reach a Milvus server at http://127.0.0.1:1: start one"):
        connect_milvus("http://127.0.0.1:1", timeout=2)


def test_reset_empties(stores, small_kb):
    for store in stores:
        store.add_documents(small_kb.chunks[:10], small_kb.vectors[:10])
        store.reset()
        assert store.count() == 0
