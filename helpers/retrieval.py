"""Retrieval quality against known answers: did the store find the FAQ answer's passage?

This is answer quality (is a relevant chunk in the top k?), not ANN recall (does the
approximate index return the exact nearest neighbours?): ``helpers.bench`` measures that.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Indices of the exact top-``k`` rows of ``vectors`` by cosine (inner product of unit vectors)."""
    scores = np.asarray(queries, np.float32) @ np.asarray(vectors, np.float32).T
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(top, order, axis=1)


def hit_rate(ranked_ids: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int) -> float:
    """Share of queries with at least one relevant id among their first ``k`` results."""
    if len(ranked_ids) != len(relevant) or not relevant:
        raise ValueError("hit_rate needs one ranked list per query and at least one query.")
    return float(np.mean([bool(set(ids[:k]) & rel) for ids, rel in zip(ranked_ids, relevant)]))


def mean_reciprocal_rank(ranked_ids: Sequence[Sequence[str]], relevant: Sequence[set[str]]) -> float:
    """Mean of 1/rank of the first relevant result (0 when none is returned)."""
    if len(ranked_ids) != len(relevant) or not relevant:
        raise ValueError("mean_reciprocal_rank needs one ranked list per query and at least one query.")
    ranks = [next((1.0 / (r + 1) for r, i in enumerate(ids) if i in rel), 0.0)
             for ids, rel in zip(ranked_ids, relevant)]
    return float(np.mean(ranks))
