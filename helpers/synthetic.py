"""Synthetic records drawn around the real embeddings, to reach the guide's 50,000-chunk scale.

Embedding 50,000 real paragraphs takes about 20 minutes on 2 cores, so speed figures at the
guide's scale use the knowledge base's real chunks plus synthetic neighbours: each synthetic
vector is a real one plus Gaussian noise, re-normalised (cosine ≈ 0.86 to its source), so the
collection keeps the clustered shape of real text embeddings. Random vectors would not: their
neighbours are all equally far, which makes every index look worse at recall than it is.

Every synthetic record says so: its id starts with ``syn-``, its ``doc_id`` with
``synthetic/``, its text with ``[synthetic]``.
"""

from __future__ import annotations

import numpy as np

from .corpus import Chunk
from .errors import CorpusError
from .kb import KnowledgeBase

NOISE = 0.6  # norm of the added noise for a unit vector: cos(source, synthetic) ≈ 1/sqrt(1 + 0.36)


def synthetic_vectors(real: np.ndarray, n: int, noise: float = NOISE,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors, each a random real vector plus Gaussian noise of norm ≈ ``noise``.

    Returns the vectors and, for each, the row of ``real`` it was drawn around.
    """
    if len(real) == 0 or n < 0:
        raise CorpusError("Synthetic vectors need at least one real vector and n ≥ 0.")
    rng = np.random.default_rng(seed)
    sources = rng.integers(0, len(real), size=n)
    base = real[sources]
    out = base + rng.normal(scale=noise / np.sqrt(real.shape[1]), size=base.shape).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.astype(np.float32), sources


def scaled_knowledge_base(kb: KnowledgeBase, total: int, seed: int = 0) -> tuple[list[Chunk], np.ndarray]:
    """The real chunks followed by synthetic ones, ``total`` records in all (labelled)."""
    n_real = len(kb.chunks)
    if total <= n_real:
        return kb.chunks[:total], kb.vectors[:total]
    vectors, sources = synthetic_vectors(kb.vectors, total - n_real, seed=seed)
    chunks = [Chunk(id=f"syn-{j:06d}", doc_id=f"synthetic/{j // 50:04d}", position=j % 50,
                    text="[synthetic] " + kb.chunks[s].text, start=0,
                    end=len(kb.chunks[s].text) + 12, section="synthetic")
              for j, s in enumerate(sources)]
    return kb.chunks + chunks, np.vstack([kb.vectors, vectors])
