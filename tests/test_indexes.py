"""helpers.indexes on real embeddings: what Lite really builds, recall floors per index type against
exact search (Lite and the local server), bounded builds, the Pareto front, Chroma's ef_search."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd
import pytest

from helpers import indexes as ix
from helpers.bench import exact_search
from helpers.kb import knowledge_base
from helpers.synthetic import scaled_knowledge_base
from helpers.stores import milvus_client

ROWS = 3000  # 300 real chunks (shared with the notebooks' smoke runs) + labelled synthetic ones
K = 10
SMALL = {"nlist": 32}  # IVF needs ~39 training points per cluster: 32 clusters for 3,000 rows


@pytest.fixture(scope="module")
def data():
    kb = knowledge_base(300, progress=False)
    _, vectors = scaled_knowledge_base(kb, ROWS)
    queries = kb.question_vectors
    truth, _ = exact_search(vectors, queries, K)
    return vectors, queries, truth


@pytest.fixture
def client(milvus_uri, collection_name, data):
    with milvus_client(milvus_uri) as c:
        ix.vector_collection(c, collection_name, data[0])
        yield c
        c.drop_collection(collection_name)


def small(name: str) -> ix.IndexKind:
    kind = ix.INDEX_KINDS[name]
    if "nlist" in kind.build:
        kind = dataclasses.replace(kind, build={**kind.build, **SMALL}, values=(1, 4, 32))
    return kind


@pytest.mark.parametrize("name, floor", [("FLAT", 1.0), ("HNSW", 0.98), ("IVF_FLAT", 0.98), ("IVF_SQ8", 0.95)])
def test_recall_floors_against_exact_search(client, collection_name, data, name, floor):
    _, queries, truth = data
    built = ix.build(client, collection_name, small(name), timeout=120)
    assert built.built and built.index_s >= 0, built
    curve = ix.sweep(client, collection_name, small(name), queries, truth, repeats=1)
    assert list(curve["value"]) == list(small(name).values)
    assert curve["recall"].iloc[-1] >= floor  # the most generous setting
    assert curve["recall"].iloc[-1] >= curve["recall"].iloc[0]  # more work never loses recall here
    assert (curve["qps"] > 0).all()


def test_lite_names_indexes_it_does_not_build(tmp_path, collection_name, data):
    uri = str(tmp_path / "probe.db")
    _, queries, truth = data
    with milvus_client(uri) as c:
        ix.vector_collection(c, collection_name, data[0])
        rows = {name: ix.probe(c, collection_name, ix.INDEX_KINDS[name], queries, truth)
                for name in ("FLAT", "HNSW", "AUTOINDEX", "IVF_PQ", "SCANN")}
        assert rows["FLAT"]["search"].startswith("exact")
        assert rows["HNSW"]["search"].startswith("approximate")
        # AUTOINDEX: describe_index says AUTOINDEX, the search is HNSW's (approximate).
        assert rows["AUTOINDEX"]["describe_index says"].startswith("AUTOINDEX")
        assert rows["AUTOINDEX"]["search"].startswith("approximate")
        # IVF_PQ and SCANN are refused, yet recorded as if finished; searches are exact.
        for name in ("IVF_PQ", "SCANN"):
            assert rows[name]["create_index"].startswith("error")
            assert rows[name]["describe_index says"].startswith(name)
            assert rows[name]["search"].startswith("exact")
        assert c.list_indexes(collection_name) == []  # the probe cleans up what it recorded
        built = ix.build(c, collection_name, ix.INDEX_KINDS["IVF_PQ"])
        assert built.state == "refused" and "future phase" in built.detail
        assert ix.build(c, collection_name, ix.INDEX_KINDS["HNSW"]).built  # usable afterwards
        files = ix.lite_index_files(uri, collection_name)
        assert files and all(".hnsw." in f.name for f in files)
        assert ix.lite_index_bytes(uri, collection_name) > ROWS * 384 * 4
        cost = ix.call_cost(c, collection_name, queries[0], ix.INDEX_KINDS["HNSW"].search_params(40), calls=3)
        assert set(cost) == {"has_collection", "get_collection_stats", "search, Strong",
                             "search, Bounded", "search, Eventually"} and min(cost.values()) > 0


def test_server_builds_what_lite_lacks(milvus_server, collection_name, data):
    _, queries, truth = data
    with milvus_client(milvus_server.uri) as c:
        ix.vector_collection(c, collection_name, data[0])
        for name, floor in (("IVF_PQ", 0.5), ("SCANN", 0.9)):
            built = ix.build(c, collection_name, small(name), timeout=180)
            assert built.built, built
            curve = ix.sweep(c, collection_name, small(name), queries, truth, repeats=1)
            assert curve["recall"].iloc[-1] >= floor
            assert curve["recall"].iloc[-1] >= curve["recall"].iloc[0]
        start = time.monotonic()
        diskann = ix.build(c, collection_name, ix.INDEX_KINDS["DISKANN"], timeout=5)
        assert time.monotonic() - start < 30  # bounded, whatever the server does
        if not diskann.built:
            assert diskann.state in ("timed out", "failed", "refused") and diskann.detail
            assert c.list_indexes(collection_name) == []  # nothing left retrying
        assert ix.build(c, collection_name, small("IVF_FLAT")).built
        cid = c.describe_collection(collection_name)["collection_id"]
        # the newest build only: about the raw vectors (IVF_FLAT keeps them), not every past index
        assert ROWS * 384 * 4 * 0.9 < ix.server_index_bytes(milvus_server.base_dir / "data", cid) < ROWS * 384 * 4 * 1.5
        c.drop_collection(collection_name)


def test_pareto_front_keeps_only_undominated_points():
    df = pd.DataFrame({"index": list("abcde"), "recall": [0.5, 0.9, 0.8, 0.99, 0.9],
                       "qps": [1000, 500, 400, 100, 600]})
    front = ix.pareto_front(df)
    assert list(front["index"]) == ["a", "e", "d"]
    assert ix.fastest_at(df, 0.85)["index"] == "e"
    assert ix.fastest_at(df, 0.999) is None


def test_chroma_ef_search_takes_effect(tmp_path, data):
    vectors, queries, truth = data
    assert ix.chroma_collection(tmp_path / "chroma", "ef_test", vectors, ef_search=10) > 0
    curve = ix.chroma_sweep(tmp_path / "chroma", "ef_test", queries, truth, efs=(10, 200), repeats=1)
    low, high = curve["recall"]
    assert high >= 0.99 and high >= low
    col = ix.chroma_with_ef(tmp_path / "chroma", "ef_test", 33)
    assert col.configuration["hnsw"]["ef_search"] == 33
    assert np.array_equal(ix.chroma_ids(col, queries[:2], K).shape, (2, K))


def test_unknown_index_type_says_which_exist():
    with pytest.raises(ix.StoreError, match="use one of"):
        ix.kinds(["HNSW", "FAISS"])
