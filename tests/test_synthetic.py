import numpy as np

from helpers.retrieval import exact_top_k
from helpers.synthetic import scaled_knowledge_base, synthetic_vectors


def test_synthetic_vectors_stay_near_their_source(small_kb):
    vecs, sources = synthetic_vectors(small_kb.vectors, 500, seed=1)
    assert vecs.shape == (500, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    cos = np.einsum("ij,ij->i", vecs, small_kb.vectors[sources])
    assert 0.8 < cos.mean() < 0.92
    again, _ = synthetic_vectors(small_kb.vectors, 500, seed=1)
    assert np.array_equal(vecs, again)  # reproducible


def test_scaled_kb_is_labelled_and_keeps_the_real_answers(small_kb):
    chunks, vectors = scaled_knowledge_base(small_kb, 2_000)
    assert len(chunks) == len(vectors) == 2_000
    assert chunks[:len(small_kb.chunks)] == small_kb.chunks
    synthetic = chunks[len(small_kb.chunks):]
    assert all(c.id.startswith("syn-") and c.doc_id.startswith("synthetic/")
               and c.text.startswith("[synthetic] ") for c in synthetic)
    assert len({c.id for c in chunks}) == 2_000
    # A real chunk's own vector still finds itself first among its synthetic neighbours.
    top = exact_top_k(vectors, small_kb.vectors[:20], 1)[:, 0]
    assert list(top) == list(range(20))
    assert scaled_knowledge_base(small_kb, 50)[0] == small_kb.chunks[:50]
