"""The RAG retrieval path and the "0 results" diagnosis on real Chroma and real Milvus
(Lite and the local server, through the ``stores`` fixture)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import rag
from helpers.errors import KitError, StoreError
from helpers.stores import Hit


def _fill(stores, kb):
    for store in stores:
        store.add_documents(kb.chunks, kb.vectors)


def test_same_question_same_passages_in_both_stores(stores, small_kb):
    _fill(stores, small_kb)
    chroma, milvus = stores
    n = len(small_kb.questions.questions)
    got = {s.name: [rag.retrieve(s, q.question, k=5, query_vector=small_kb.question_vectors[i])
                    for i, q in enumerate(small_kb.questions.questions)] for s in stores}
    overlap = rag.overlap_at_k([r.ids for r in got["Chroma"]], [r.ids for r in got["Milvus"]], 5)
    assert overlap.shape == (n,) and overlap.mean() >= 0.95
    first = got["Milvus"][0]
    sims = [h.similarity for h in first.hits]
    assert len(first.hits) == 5 and sims == sorted(sims, reverse=True)
    # The same chunk gets the same similarity from both stores (Chroma's 1 − distance).
    by_id = {h.id: h.similarity for h in got["Chroma"][0].hits}
    assert all(abs(by_id[h.id] - h.similarity) < 1e-3 for h in first.hits if h.id in by_id)


def test_threshold_keeps_only_close_passages_and_embeds_the_question(stores, small_kb):
    _fill(stores, small_kb)
    question = small_kb.questions.questions[0].question
    for store in stores:
        r = rag.retrieve(store, question, k=10, threshold=0.5)  # embeds the question itself
        assert r.hits and all(h.similarity >= 0.5 for h in r.hits) and len(r.hits) <= 10
        assert set(r.ids) & small_kb.relevant(0)
        assert rag.retrieve(store, question, k=10, threshold=0.99).hits == []


def test_prompt_numbers_passages_cites_sources_and_respects_budget():
    hits = [Hit(f"c{i}", 0.9 - i / 10, 0.1, "z" * 300, {"doc_id": f"faq/d{i}", "section": "S"})
            for i in range(5)]
    prompt = rag.build_prompt("Why?", hits, max_context_chars=700)
    assert prompt.startswith(rag.PROMPT_HEADER) and prompt.rstrip().endswith("Question: Why?\nAnswer:")
    assert "[1] (faq/d0 § S; similarity 0.90)" in prompt and "[3]" in prompt and "[4]" not in prompt
    assert prompt.count("z") == 700
    assert "(no passage passed the similarity threshold)" in rag.build_prompt("Why?", [])


def test_overlap_at_k():
    a = [["1", "2", "3"], ["1", "2", "3"]]
    b = [["3", "2", "1"], ["4", "5", "1"]]
    assert rag.overlap_at_k(a, b, 3).tolist() == pytest.approx([1.0, 1 / 3])
    assert rag.overlap_at_k(a, b, 1).tolist() == [0.0, 0.0]
    with pytest.raises(KitError):
        rag.overlap_at_k(a, b[:1], 3)


def test_bad_k_and_threshold_say_what_to_do(stores, small_kb):
    chroma, _ = stores
    with pytest.raises(KitError, match="at least one"):
        rag.retrieve(chroma, "q", k=0, query_vector=small_kb.question_vectors[0])
    with pytest.raises(KitError, match=r"\[-1, 1\]"):
        rag.retrieve(chroma, "q", threshold=1.5, query_vector=small_kb.question_vectors[0])


def test_released_collection_is_diagnosed_and_fixed_by_load(stores, small_kb):
    _fill(stores, small_kb)
    _, milvus = stores
    q = small_kb.question_vectors[0]
    milvus.client.release_collection(milvus.collection)
    with pytest.raises(StoreError, match="not loaded.*load_collection"):
        rag.retrieve(milvus, "q", query_vector=q)
    diag = rag.diagnose_empty_results(milvus, q)
    assert not diag.healthy and "released" in diag.cause and "load_collection" in diag.fix
    assert diag.checks[0].check == "load state" and not diag.checks[0].ok
    milvus.client.load_collection(milvus.collection)
    assert rag.diagnose_empty_results(milvus, q).healthy
    assert len(rag.retrieve(milvus, "q", query_vector=q).hits) == 5


def test_empty_collection_is_diagnosed_by_entity_count(stores, small_kb):
    q = small_kb.question_vectors[0]
    for store in stores:
        assert rag.retrieve(store, "q", query_vector=q).hits == []
        diag = rag.diagnose_empty_results(store, q, threshold=0.5)
        assert not diag.healthy and "no entities" in diag.cause
        assert [c for c in diag.checks if c.check == "entity count"][0].result == "0"


def test_too_high_threshold_is_diagnosed_with_the_best_similarity(stores, small_kb):
    _fill(stores, small_kb)
    q = small_kb.question_vectors[0]
    for store in stores:
        diag = rag.diagnose_empty_results(store, q, threshold=0.99)
        best = store.search(q, k=1)[0][0].similarity
        assert not diag.healthy and "above the best similarity" in diag.cause
        assert f"{best:.3f}" in diag.cause and f"below {best:.2f}" in diag.fix
        assert rag.diagnose_empty_results(store, q, threshold=best - 0.01).healthy


def test_unflushed_rows_are_reported_on_a_server_only(stores, small_kb):
    _, milvus = stores
    milvus.add_documents(small_kb.chunks, small_kb.vectors, flush=False)
    diag = rag.diagnose_empty_results(milvus, small_kb.question_vectors[0])
    flushed = [c for c in diag.checks if c.check.startswith("flushed rows")][0]
    if milvus.mode == "server":  # sealed on flush: get_collection_stats counts flushed rows only
        assert not flushed.ok and "not flushed" in diag.cause and "flush" in diag.fix
        milvus.client.flush(milvus.collection)
        assert rag.diagnose_empty_results(milvus, small_kb.question_vectors[0]).healthy
    else:  # Milvus Lite counts (and searches) every row at once
        assert flushed.ok and diag.healthy


def test_deleted_document_is_gone_from_both_stores(stores, small_kb):
    _fill(stores, small_kb)
    doc = small_kb.chunks[0].doc_id
    mine = [i for i, c in enumerate(small_kb.chunks) if c.doc_id == doc]
    for store in stores:
        assert store.delete_document(doc) == len(mine)
        assert store.count() == len(small_kb.chunks) - len(mine)
        found = {h.id for hits in store.search(small_kb.vectors[mine], k=3) for h in hits}
        assert not found & {small_kb.chunks[i].id for i in mine}
        assert all(h.doc_id != doc for hits in store.search(small_kb.vectors[mine], k=3) for h in hits)


def test_every_metric_ranks_alike_and_converts_to_the_same_similarity(stores, small_kb):
    chroma, milvus = stores
    q = small_kb.question_vectors[:8]
    got = rag.scores_by_metric([c.id for c in small_kb.chunks], small_kb.vectors, q, 5,
                               chroma.client, milvus.client, prefix=f"m_{milvus.collection}")
    assert set(got) == set(rag.METRICS)
    exact = (q @ small_kb.vectors.T)
    best = np.sort(exact, axis=1)[:, ::-1][:, :5]
    for label, (ids, raw) in got.items():
        assert raw.shape == (8, 5)
        assert np.allclose(rag.to_similarity(raw, label), best, atol=2e-3), label
    assert got["Milvus COSINE"][0] == got["Chroma cosine"][0]
    # The raw numbers differ: similarity ↓ along the ranking, distances ↑.
    assert (np.diff(got["Milvus COSINE"][1], axis=1) <= 1e-6).all()
    assert (np.diff(got["Milvus L2"][1], axis=1) >= -1e-6).all()
    assert not milvus.client.has_collection(f"m_{milvus.collection}_l2")
