import numpy as np
import pytest

from helpers import retrieval


def test_exact_top_k_matches_a_full_sort():
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(200, 16)).astype(np.float32)
    queries = rng.normal(size=(7, 16)).astype(np.float32)
    top = retrieval.exact_top_k(vecs, queries, 5)
    expected = np.argsort(-(queries @ vecs.T), axis=1)[:, :5]
    assert np.array_equal(top, expected)
    assert retrieval.exact_top_k(vecs[:3], queries, 10).shape == (7, 3)


def test_hit_rate_and_mrr_by_hand():
    ranked = [["a", "b", "c"], ["x", "y", "z"], ["q", "r", "s"]]
    relevant = [{"b"}, {"x", "z"}, {"nope"}]
    assert retrieval.hit_rate(ranked, relevant, 1) == pytest.approx(1 / 3)
    assert retrieval.hit_rate(ranked, relevant, 2) == pytest.approx(2 / 3)
    assert retrieval.mean_reciprocal_rank(ranked, relevant) == pytest.approx((0.5 + 1 + 0) / 3)
    with pytest.raises(ValueError):
        retrieval.hit_rate(ranked, relevant[:2], 1)


def test_real_answers_are_found(small_kb):
    """The FAQ answers are retrievable: a floor on exact search over the real embeddings."""
    top = retrieval.exact_top_k(small_kb.vectors, small_kb.question_vectors, 5)
    ranked = [[small_kb.chunks[j].id for j in row] for row in top]
    relevant = [small_kb.relevant(i) for i in range(len(small_kb.questions.questions))]
    assert retrieval.hit_rate(ranked, relevant, 5) >= 0.75
