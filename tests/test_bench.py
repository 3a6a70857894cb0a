"""The benchmark harness: its maths by hand, and a tiny run through real Chroma and Milvus Lite.

Correctness only: no assertion here depends on how fast anything ran.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from helpers import bench
from helpers.stores import ChromaStore, MilvusStore


def test_latency_summary_percentiles():
    secs = np.arange(1, 101) / 1000.0  # 1 … 100 ms
    s = bench.latency_summary(secs)
    assert s["median_ms"] == pytest.approx(50.5)
    assert s["p95_ms"] == pytest.approx(95.05)
    assert s["p99_ms"] == pytest.approx(99.01)
    assert s["mean_ms"] == pytest.approx(50.5) and s["queries"] == 100
    assert bench.latency_summary([0.002])["p99_ms"] == pytest.approx(2.0)
    with pytest.raises(ValueError):
        bench.latency_summary([])


def test_recall_at_k_is_micro_averaged():
    found = [["a", "b", "x"], ["c", "y"]]
    truth = [["a", "b", "c"], ["c"]]
    assert bench.recall_at_k(found, truth) == pytest.approx(3 / 4)
    assert bench.recall_at_k(truth, truth) == 1.0
    assert math.isnan(bench.recall_at_k([["a"]], [[]]))  # nothing to find: not measurable
    with pytest.raises(ValueError):
        bench.recall_at_k([["a"]], [])


def test_threshold_truth_keeps_only_close_neighbours():
    ids = [["a", "b", "c"], ["d", "e", "f"]]
    sims = np.array([[0.95, 0.72, 0.4], [0.6, 0.55, 0.1]])
    assert bench.threshold_truth(ids, sims, 0.7) == [["a", "b"], []]
    assert bench.threshold_truth(ids, sims, 0.5) == [["a", "b"], ["d", "e"]]


def test_exact_search_matches_brute_force():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(200, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    q = v[:5] + 0.01
    idx, sims = bench.exact_search(v, q, 3)
    full = q @ v.T
    assert (idx[:, 0] == np.arange(5)).all()
    np.testing.assert_allclose(sims, np.sort(full, axis=1)[:, ::-1][:, :3], rtol=1e-5)
    hits = bench.ExactSearch(v, [f"r{i}" for i in range(200)]).search(q[:1], k=2, threshold=-1)
    assert [h.id for h in hits[0]][0] == "r0" and len(hits[0]) == 2


def test_with_ratios_and_verdict():
    df = pd.DataFrame({"store": ["Chroma", "Milvus", "Chroma", "Milvus"], "k": [5, 5, 20, 20],
                       "ms": [2.0, 6.0, 4.0, 2.0]})
    out = bench.with_ratios(df, "Chroma", ["ms"], by=["k"])
    assert out["ms ÷ Chroma"].tolist() == [1.0, 3.0, 1.0, 0.5]
    flat = bench.with_ratios(df.iloc[:2], "Chroma", ["ms"])
    assert flat["ms ÷ Chroma"].tolist() == [1.0, 3.0]
    with pytest.raises(ValueError):
        bench.with_ratios(df, "Qdrant", ["ms"])
    # the guide claims Milvus takes 0.3× Chroma's time
    assert bench.verdict(0.5, 0.3) == "confirmed"
    assert bench.verdict(3.0, 0.3) == "refuted: the opposite way"
    assert bench.verdict(1.05, 0.3).startswith("refuted: no clear difference")
    assert bench.verdict(float("nan"), 0.3) == "not measurable here"


def test_folder_bytes(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 5)
    assert bench.folder_bytes(tmp_path) == 15
    assert bench.folder_bytes(tmp_path / "a") == 10
    assert bench.folder_bytes(tmp_path / "none") == 0  # a folder not made yet


def test_tiny_end_to_end_run_on_both_stores(tmp_path, small_kb):
    chunks, vectors = small_kb.chunks, small_kb.vectors
    queries = small_kb.question_vectors[:12]
    chroma = ChromaStore(tmp_path / "chroma", "bench_tiny")
    lite = MilvusStore(str(tmp_path / "lite.db"), "bench_tiny")
    try:
        assert bench.ensure_collection(chroma, chunks, vectors) is not None
        assert bench.ensure_collection(lite, chunks, vectors) is not None
        assert bench.ensure_collection(lite, chunks, vectors) is None  # reused, not rebuilt
        bounded = bench.with_consistency(lite, "Bounded")
        assert [h.id for h in bounded.search(queries[:2], k=3)[1]] == [h.id for h in lite.search(queries[:2], k=3)[1]]
        stores = {"Chroma": chroma, "Milvus Lite": lite,
                  "exact (numpy)": bench.ExactSearch(vectors, [c.id for c in chunks])}

        summary, samples = bench.measure_latency(stores, queries, ks=(5, 20), warmup=2, progress=False)
        single = summary[summary["mode"] == "single query"]
        assert len(single) == 6 and (single["queries"] == 12).all()
        assert (single["median_ms"] <= single["p95_ms"]).all() and (single["p95_ms"] <= single["p99_ms"]).all()
        assert len(samples) == 3 * 2 * 12

        qps = bench.measure_qps(stores, queries, clients=(1, 2), duration=0.2, progress=False)
        assert list(qps.columns) == [1, 2] and (qps > 0).all().all()

        recall = bench.measure_recall(stores, vectors, [c.id for c in chunks], queries, k=5)
        overall = recall[recall["threshold"].isna()].set_index("store")["recall"]
        assert overall["exact (numpy)"] == 1.0
        assert overall["Chroma"] >= 0.9 and overall["Milvus Lite"] >= 0.9  # 120 rows: HNSW ≈ exact
        assert (recall.groupby("store").size() == 4).all()

        inserts = bench.measure_inserts(
            {"Chroma": lambda: ChromaStore(tmp_path / "ins_chroma", "ins"),
             "Milvus Lite": lambda: MilvusStore(str(tmp_path / "ins.db"), "ins")},
            chunks[:50], vectors[:50], batch_sizes=(10, 50), progress=False)
        assert len(inserts) == 4 and (inserts["rows"] == 50).all() and (inserts["rows_per_s"] > 0).all()
    finally:
        lite.close()

    assert bench.folder_bytes(tmp_path / "chroma") > vectors.nbytes  # vectors are on disk
    for kind, where in (("chroma", tmp_path / "chroma"), ("lite", tmp_path / "lite.db")):
        mem = bench.fresh_process_memory(kind, where, "bench_tiny", queries)
        assert mem["rss"] >= mem["baseline"] > 0 and mem["store"] == mem["rss"] - mem["baseline"]
        assert mem["peak"] >= mem["rss"] * 0.9


def test_fresh_process_memory_says_what_is_wrong(tmp_path):
    with pytest.raises(Exception, match="fresh process failed"):
        bench.fresh_process_memory("chroma", tmp_path / "nothing", "absent", np.zeros((1, 384)))
    with pytest.raises(ValueError, match="server"):
        bench.fresh_process_memory("server", tmp_path, "x", np.zeros((1, 384)))
