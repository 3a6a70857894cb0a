"""Schema inspection and proposal on tricky Chroma data, round trips through real Milvus Lite
(and the local Milvus 2.3.5 server when its binary runs here), tenant-filtered search."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from pymilvus.exceptions import MilvusException

from helpers import schema
from helpers.errors import ConfigError, DataError
from helpers.retrieval import exact_top_k
from helpers.schema import Record, SchemaProposal
from helpers.stores import ChromaStore, connect_milvus

DIM = 8
N = 60
LONG = "x" * 70_000  # over Milvus's 65,535-byte VARCHAR limit


def tricky_records(with_bare: bool = True) -> list[Record]:
    """Records whose metadata is everything a real Chroma collection can hold, and worse."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(N):
        meta = {"doc_id": f"doc/{i // 6}", "position": i % 6, "score": i / 7 + 0.5,
                "mixed": i if i % 2 else i + 0.25,  # int and float
                "flag": i % 3 == 0, "tenant": f"t{i % 3}", "page-number": i, "1st": "yes",
                "id": f"shadow-{i}", "title": "Élan " * (i % 5 + 1)}
        if i % 4:
            meta["tags"] = [f"tag{j}" for j in range(i % 4)]  # lists of 1–3, missing on ¼
        if i % 10 == 0:
            meta["rare"] = i
        if i == 3:
            meta["blob"] = LONG
        elif i % 2:
            meta["blob"] = "short"
        doc = None if i == 5 else f"chunk {i} " + "é" * i
        out.append(Record(f"rec-{i:03d}", rng.normal(size=DIM).astype(np.float32), doc, meta))
    if with_bare:
        out.append(Record("bare", rng.normal(size=DIM).astype(np.float32), "no metadata", None))
    return out


@pytest.fixture
def tricky(tmp_path):
    """A real Chroma collection (cosine) holding the tricky records."""
    store = ChromaStore(tmp_path / "chroma", "tricky", dim=DIM)
    recs = tricky_records()
    store.collection.upsert(ids=[r.id for r in recs], embeddings=np.stack([r.embedding for r in recs]),
                            documents=[r.document for r in recs], metadatas=[r.metadata for r in recs])
    return store.collection, recs


@pytest.fixture
def milvus(tmp_path):
    client = connect_milvus(str(tmp_path / "milvus.db"))
    yield client
    client.close()
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(str(tmp_path / "milvus.db"))


def test_inspection_reports_what_chroma_holds(tricky):
    col, recs = tricky
    rep = schema.inspect_collection(col, page_size=7)  # many pages, one partial
    assert (rep.count, rep.dim, rep.space) == (len(recs), DIM, "cosine")
    assert rep.metadata_none == 1 and rep.documents_none == 1 and not rep.ids_numeric
    k = rep.keys
    assert dict(k["mixed"].types) == {"int": 30, "float": 30}
    assert dict(k["flag"].types) == {"bool": N} and dict(k["position"].types) == {"int": N}
    assert k["tags"].present == 45 and (k["tags"].list_min, k["tags"].list_max) == (1, 3)
    assert dict(k["tags"].types) == {"list[str]": 45}
    assert k["title"].max_bytes == len("Élan ".encode()) * 5 and k["blob"].max_bytes == 70_000
    assert k["doc_id"].cardinality == 10 and k["tenant"].cardinality == 3
    assert not k["page-number"].valid_name and not k["1st"].valid_name and k["doc_id"].valid_name
    table = rep.table()
    assert table.loc["doc_id", "share"] == round(N / (N + 1), 3) and table.loc["rare", "share"] < 0.2
    assert table.loc["tags", "list length"] == "1–3"


def test_proposal_types_and_falls_back_with_reasons(tricky):
    col, _ = tricky
    rep = schema.inspect_collection(col)
    p = schema.propose(rep, target="lite")
    by = {f.key: f for f in p.fields}
    assert p.metric == "COSINE" and p.dim == DIM and p.document_nullable
    assert by["doc_id"].dtype == "VARCHAR" and by["doc_id"].nullable  # the bare record lacks it
    assert by["doc_id"].max_length >= 2 * rep.keys["doc_id"].max_bytes
    assert by["position"].dtype == "INT64" and by["score"].dtype == "DOUBLE" and by["flag"].dtype == "BOOL"
    assert by["tags"].dtype == "ARRAY" and by["tags"].element_type == "VARCHAR" and by["tags"].max_capacity >= 3
    for key in ("mixed", "page-number", "1st", "id", "blob", "rare"):
        assert by[key].dtype == "JSON", key
    joined = " ".join(p.notes)
    for key in ("mixed", "page-number", "1st", "'id'", "blob"):
        assert key in joined
    assert p.scalar_indexes == {"doc_id": "INVERTED", "tenant": "INVERTED"}
    fields = {f.name: f for f in p.schema().fields}
    assert fields["id"].is_primary and set(fields) >= {"embedding", "document", "metadata", "tags"}
    # The server target has no nullable fields: every sometimes-missing key goes to JSON.
    s = schema.propose(rep, target="server")
    assert not any(f.nullable for f in s.fields) and not s.document_nullable and s.none_document_as_empty
    assert {f.key for f in s.fields if f.dtype == "JSON"} >= {"doc_id", "tags"}
    assert "no nullable fields" in " ".join(s.notes) and "JSON limit" in " ".join(s.notes)


def test_proposal_without_missing_keys_types_them_on_the_server(tmp_path):
    rep = schema.inspect_records([tricky_records(with_bare=False)], "t", "l2")
    p = schema.propose(rep, target="server", primary="int64")
    by = {f.key: f for f in p.fields}
    assert p.metric == "L2" and p.int_ids == "hash" and p.pk_field == "pk"
    assert by["doc_id"].dtype == "VARCHAR" and not by["doc_id"].nullable
    assert by["tags"].dtype == "JSON"  # missing on a quarter of the records
    assert p.scalar_indexes == {"id": "Trie", "doc_id": "Trie", "tenant": "Trie"}


@pytest.mark.parametrize("target,primary", [("lite", "varchar"), ("lite", "int64"), ("server", "varchar")])
def test_round_trip_through_milvus_is_lossless(tricky, milvus, target, primary):
    col, recs = tricky
    p = schema.propose(schema.inspect_collection(col), target=target, primary=primary)
    p.create(milvus, "rt")
    exported = [r for page in schema.scan(col, page_size=16) for r in page]
    if target == "server":  # the 70 kB value is over the server's JSON limit: refused up front
        blob = next(r for r in exported if r.id == "rec-003")
        with pytest.raises(DataError, match="JSON"):
            p.to_row(blob)
        exported.remove(blob)
    assert p.insert(milvus, "rt", exported, batch_size=25) == len(exported)
    back = p.fetch(milvus, "rt", [r.id for r in exported])
    assert len(back) == len(exported)
    # Lossless against what Chroma exports (Chroma itself may move a float by one ulp on the way in).
    for orig, got in zip(exported, back):
        assert orig.same_as(got), orig.id
    back = {r.id: r for r in back}
    assert isinstance(back["rec-001"].metadata["mixed"], int) and isinstance(back["rec-000"].metadata["mixed"], float)
    assert back["bare"].metadata is None and back["rec-005"].document is None
    if target == "lite":
        assert back["rec-003"].metadata["blob"] == LONG


def test_save_load_round_trip(tricky, tmp_path):
    col, _ = tricky
    p = schema.propose(schema.inspect_collection(col), primary="int64")
    q = SchemaProposal.load(p.save(tmp_path / "plans" / "schema.json"))
    assert q == p and q.schema().to_dict() == p.schema().to_dict()
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        SchemaProposal.load(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="Cannot read"):
        SchemaProposal.load(tmp_path / "missing.json")


def test_records_that_do_not_fit_get_one_sentence(tricky):
    col, recs = tricky
    rep = schema.inspect_records([tricky_records(with_bare=False)], "t", "cosine")
    p = schema.propose(rep, target="server")
    good = recs[0]
    cases = [Record(good.id, good.embedding, good.document, {**good.metadata, "position": "7"}),
             Record(good.id, good.embedding, good.document, {k: v for k, v in good.metadata.items() if k != "doc_id"}),
             Record(good.id, good.embedding, "é" * 40_000, good.metadata),
             Record(good.id, good.embedding[:4], good.document, good.metadata)]
    for bad in cases:
        with pytest.raises(DataError) as err:
            p.to_row(bad)
        assert str(err.value).count(".") <= 3 and ":" in str(err.value)
    with pytest.raises(ConfigError):
        schema.propose(rep, partition_key="tags")
    with pytest.raises(ConfigError):
        schema.propose(rep, target="cloud")


def test_empty_collection_is_refused(tmp_path):
    store = ChromaStore(tmp_path / "chroma", "empty", dim=DIM)
    with pytest.raises(DataError, match="empty"):
        schema.inspect_collection(store.collection)


def _tenant_collection(tmp_path, small_kb, n_tenants=4):
    store = ChromaStore(tmp_path / "chroma", "kb_tenants")
    metas = [schema.tenant_metadata(c, n_tenants) for c in small_kb.chunks]
    schema.fill_chroma(store.collection, small_kb.chunks, small_kb.vectors, metas)
    return store.collection, metas


def _check_tenant_search(client, small_kb, metas, p):
    q = small_kb.question_vectors[:20]
    tenants = sorted({m["tenant"] for m in metas})
    assert len(tenants) > 1
    for t in tenants:
        mine = np.array([i for i, m in enumerate(metas) if m["tenant"] == t])
        counted = client.query("kb", filter=f'tenant == "{t}"', output_fields=["count(*)"])[0]["count(*)"]
        assert counted == len(mine), (t, counted, len(mine))  # every row in its tenant's partition
        hits = schema.search(client, "kb", p, q, k=5, tenant=t, output_fields=("id", "tenant"), batch_size=8)
        assert all(h.metadata["tenant"] == t for row in hits for h in row)
        assert all(len(row) == min(5, len(mine)) for row in hits)
        exact = [[small_kb.chunks[mine[j]].id for j in row]
                 for row in exact_top_k(small_kb.vectors[mine], q, min(5, len(mine)))]
        found = np.mean([len({h.id for h in row} & set(e)) / len(e) for row, e in zip(hits, exact)])
        assert found >= 0.95, (t, found)
    unfiltered = schema.search(client, "kb", p, q, k=5, output_fields=("id", "tenant"))
    assert len({h.metadata["tenant"] for row in unfiltered for h in row}) > 1


def test_tenant_filter_returns_only_that_tenants_records(tmp_path, small_kb, milvus):
    col, metas = _tenant_collection(tmp_path, small_kb)
    rep = schema.inspect_collection(col)
    p = schema.propose(rep, partition_key="tenant", num_partitions=8)
    assert next(f for f in p.fields if f.key == "tenant").partition_key
    p.create(milvus, "kb")
    assert milvus.describe_collection("kb")["num_partitions"] > 1
    p.insert(milvus, "kb", (r for page in schema.scan(col) for r in page))
    _check_tenant_search(milvus, small_kb, metas, p)
    with pytest.raises(ConfigError, match="(?i)partition key"):
        schema.propose(rep, partition_key="no_such_key")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_on_the_local_milvus_server(tmp_path, tricky, small_kb):
    """The server target's claims, on the real Milvus 2.3.5: Trie/STL_SORT indexes, no
    nullable values, JSON fallbacks, partition key; a round trip stays lossless."""
    from helpers import server

    if not server.server_available():
        pytest.skip("the `milvus` server package does not run on this machine")
    col, recs = tricky
    tcol, metas = _tenant_collection(tmp_path, small_kb)
    with server.local_server(tmp_path / "srv", port=_free_port()) as srv:
        client = connect_milvus(srv.uri)
        try:
            p = schema.propose(schema.inspect_collection(col), target="server", primary="int64")
            p.create(client, "rt")
            exported = [r for page in schema.scan(col) for r in page]
            blob = next(r for r in exported if r.id == "rec-003")
            with pytest.raises(DataError, match="JSON"):  # 70 kB: over the server's JSON limit too
                p.to_row(blob)
            exported.remove(blob)
            p.insert(client, "rt", exported)
            for orig, got in zip(exported, p.fetch(client, "rt", [r.id for r in exported])):
                assert orig.same_as(got), orig.id
            tp = schema.propose(schema.inspect_collection(tcol), target="server", partition_key="tenant")
            tp.create(client, "kb")
            tp.insert(client, "kb", (r for page in schema.scan(tcol) for r in page))
            tp.insert(client, "kb", (r for page in schema.scan(tcol) for r in page))  # again: replaced
            _check_tenant_search(client, small_kb, metas, tp)
            # A plan for Lite does not fit the server: its INVERTED indexes and None values are refused.
            rep = schema.inspect_collection(col)
            with pytest.raises(MilvusException, match="Trie"):
                schema.propose(rep, target="lite").create(client, "lite_plan")
            client.drop_collection("lite_plan")
            lite_plan = schema.propose(rep, target="lite", filter_fields=())
            lite_plan.create(client, "lite_plan")
            with pytest.raises(MilvusException):
                lite_plan.insert(client, "lite_plan", exported)
        finally:
            client.close()
