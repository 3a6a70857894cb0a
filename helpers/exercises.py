"""Checkers for the notebooks' exercises: each prints ✓ or ✗ with a hint, and returns a bool.

Checkers compute the right answer from the live stores or data, so they stay right when a
notebook runs at another scale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .corpus import Chunk
from .stores import ChromaStore, Hit, MilvusStore

if TYPE_CHECKING:
    import pandas as pd

    from .schema import Inspection


def _verdict(ok: bool, success: str, hint: str) -> bool:
    print(f"✓ {success}" if ok else f"✗ Not yet. Hint: {hint}")
    return ok


def check_chunks_of(answer: object, chunks: Sequence[Chunk], doc_id: str = "faq/programming") -> bool:
    """Exercise 00.1: the number of knowledge-base chunks from ``doc_id``."""
    expected = sum(c.doc_id == doc_id for c in chunks)
    return _verdict(answer == expected, f"{doc_id} has {expected} chunks in the knowledge base.",
                    f"count the chunks whose doc_id is {doc_id!r} (Chroma: collection.get(where=...), "
                    "Milvus: query(filter=...) with output_fields=['count(*)']).")


def check_similarity(answer: object, chroma_hit: Hit) -> bool:
    """Exercise 00.2: the cosine similarity Milvus reports for Chroma's top hit."""
    ok = isinstance(answer, (int, float)) and abs(float(answer) - (1.0 - chroma_hit.raw)) < 1e-3
    return _verdict(ok, f"similarity = 1 − distance = {1.0 - chroma_hit.raw:.4f}: the same "
                        "number Milvus reports, under the opposite name.",
                    "Chroma reports cosine distance d = 1 − cos; Milvus COSINE reports cos.")


def check_deleted_and_restored(chroma: ChromaStore, milvus: MilvusStore, doc_id: str,
                               chunks: Sequence[Chunk], vectors: np.ndarray) -> bool:
    """Exercise 00.3: ``doc_id`` deleted from both stores, then put back whole."""
    mine = [i for i, c in enumerate(chunks) if c.doc_id == doc_id]
    if not mine:
        return _verdict(False, "", f"{doc_id!r} is not in the knowledge base: pick a doc_id from it.")
    hits_c = chroma.search(vectors[mine], k=1)
    hits_m = milvus.search(vectors[mine], k=1)
    back = all(h and h[0].id == chunks[i].id for h, i in zip(hits_c + hits_m, mine + mine))
    same = chroma.count() == milvus.count() == len(chunks)
    return _verdict(back and same, f"{doc_id} ({len(mine)} chunks) is back in both stores, "
                                   f"which hold {len(chunks)} chunks each.",
                    "delete_document(doc_id) on both stores, check count() dropped by the same "
                    "number, then add_documents(those chunks, their vectors) on both.")


def check_recall(answer: object, store: ChromaStore | MilvusStore, vectors: np.ndarray,
                 ids: Sequence[str], queries: np.ndarray, k: int = 5) -> bool:
    """Exercise 01.1: the store's recall@k against exact search over the same vectors."""
    from .bench import exact_search, recall_at_k

    found = [[h.id for h in hits] for hits in store.search(queries, k=k)]
    idx, _ = exact_search(vectors, queries, k)
    expected = recall_at_k(found, [[ids[i] for i in row] for row in idx])
    ok = isinstance(answer, (int, float)) and abs(float(answer) - expected) < 1e-9
    return _verdict(ok, f"recall@{k} = {expected:.3f}: the share of the exact top-{k} the index returned.",
                    "for each query, count how many exact top-k ids the store returned, sum over "
                    "queries, divide by (queries × k).")


def check_percentile(answer: object, samples: "pd.DataFrame", store: str, k: int, q: float) -> bool:
    """Exercise 01.2: the ``q``-th percentile of ``store``'s top-``k`` latency samples, in ms."""
    ms = samples[(samples["store"] == store) & (samples["k"] == k)]["ms"]
    expected = float(np.percentile(ms, q))
    ok = isinstance(answer, (int, float)) and abs(float(answer) - expected) < 1e-6
    return _verdict(ok, f"p{q:g} of {store}'s top-{k} latency is {expected:.2f} ms.",
                    f"select the rows of samples for store {store!r} and k {k}, then "
                    f"np.percentile(their 'ms', {q:g}).")


def check_json_keys(answer: object, inspection: Inspection, target: str = "server") -> bool:
    """Exercise 02.1: the metadata keys a proposal for ``target`` puts in the JSON field."""
    from .schema import propose

    expected = {f.key for f in propose(inspection, target=target).fields if not f.typed}
    ok = isinstance(answer, (set, list, tuple)) and set(answer) == expected
    return _verdict(ok, f"on the {target} target these keys go to JSON: {sorted(expected) or 'none'}.",
                    f"a key goes to JSON when it is rare, mixed-typed, not a valid field name, too "
                    f"long, or (on a target without nullable fields) missing on some records: "
                    f"read inspection.table()'s share column, or propose(..., target={target!r}).notes.")


def check_filter_matches(expr: object, client: Any, collection: str, chroma_collection: Any,
                         where: dict[str, Any]) -> bool:
    """Exercise 02.2: a Milvus filter expression selecting the same records as a Chroma ``where``."""
    want = set(chroma_collection.get(where=where, include=[])["ids"])
    try:
        got = {r["id"] for r in client.query(collection, filter=str(expr), output_fields=["id"],
                                             limit=16_384)}
    except Exception as exc:  # pymilvus raises several types for a bad expression
        return _verdict(False, "", f"Milvus refused the expression ({str(exc)[:120]}): write e.g. "
                                   "'tenant == \"tenant-01\" and position < 2'.")
    return _verdict(got == want, f"{len(want)} records, the same in both stores.",
                    f"Chroma's where selects {len(want)} records, your filter {len(got)}: "
                    "$and → and, $lt → <, {'key': value} → key == value (strings in double quotes).")


def check_tenant_top(answer: object, vectors: np.ndarray, ids: Sequence[str], tenants: Sequence[str],
                     query: np.ndarray, tenant: str, k: int = 5) -> bool:
    """Exercise 02.3: the ids of ``tenant``'s top-``k`` records for ``query`` (exact search)."""
    from .retrieval import exact_top_k

    mine = [i for i, t in enumerate(tenants) if t == tenant]
    top = exact_top_k(vectors[mine], np.asarray(query, np.float32).reshape(1, -1), k)[0]
    expected = [ids[mine[j]] for j in top]
    got = list(answer) if isinstance(answer, (list, tuple)) else []
    ok = len(got) == len(expected) and len(set(got) & set(expected)) >= len(expected) - 1
    return _verdict(ok, f"{tenant}'s top {k}: {expected}.",
                    "schema.search(client, name, proposal, query, k=5, tenant=...) and take each "
                    "hit's .id; without tenant= the hits come from every tenant.")


def check_copied(chroma_path: Any, collection: str, milvus_uri: str, target: str) -> bool:
    """Exercise 03.1: ``target`` holds a verified copy of Chroma ``collection``."""
    from .errors import KitError
    from .migrate import verify

    try:
        report = verify(chroma_path, collection, milvus_uri, target, progress=False)
    except KitError as exc:
        return _verdict(False, "", f"{exc} Run python -m helpers.migrate (or main([...])) first.")
    return _verdict(report.ok, f"{target} is a verified copy: {report.target_rows} rows, top-"
                               f"{report.top_k} overlap {report.overlap:.2f}.",
                    "migrate with --target-collection and the same --milvus-uri, then --verify-only.")


def check_long_document_option(answer: object) -> bool:
    """Exercise 03.2: the option value that keeps every record of a collection with a too-long document."""
    return _verdict(answer == "truncate", "--on-long-document truncate keeps the record (its text cut "
                                          "at 65,535 bytes, on a character boundary) and counts it.",
                    "skip drops the record, fail writes nothing: which one keeps every id?")


def check_max_threshold(answer: object, store: ChromaStore | MilvusStore, question_vectors: np.ndarray) -> bool:
    """Exercise 06.1: the highest threshold at which every question still gets a passage."""
    expected = min(hits[0].similarity for hits in store.search(question_vectors, k=1))
    ok = isinstance(answer, (int, float)) and abs(float(answer) - expected) < 0.005
    return _verdict(ok, f"{expected:.3f}: the worst question's best similarity. Any higher and "
                        "some question gets no passage at all.",
                    "search every question with k=1 and take the smallest top-1 similarity.")


def check_threshold_conversion(cosine: object, l2: object, chroma_distance: float) -> bool:
    """Exercise 06.2: Chroma's ``distance ≤ d`` as a Milvus COSINE and a Milvus L2 threshold."""
    ok = all(isinstance(a, (int, float)) for a in (cosine, l2)) and \
        abs(float(cosine) - (1 - chroma_distance)) < 1e-6 and abs(float(l2) - 2 * chroma_distance) < 1e-6
    return _verdict(ok, f"distance ≤ {chroma_distance} ⇔ COSINE similarity ≥ {1 - chroma_distance:.2f} "
                        f"⇔ squared L2 ≤ {2 * chroma_distance:.2f} (unit vectors).",
                    "cosine distance d = 1 − cos; squared L2 between unit vectors = 2 − 2·cos.")


def check_retrieves(store: MilvusStore, query_vector: np.ndarray, k: int = 5) -> bool:
    """Exercise 06.3: the broken collection answers again."""
    from .errors import KitError
    from .rag import retrieve

    try:
        hits = retrieve(store, "", k=k, query_vector=query_vector).hits
    except KitError as exc:
        return _verdict(False, "", f"{exc}")
    return _verdict(len(hits) == k, f"{store.collection} answers again with {len(hits)} passages.",
                    "run diagnose_empty_results on it and apply the fix it names.")


def check_vector_memory(answer: object, rows: int, dim: int) -> bool:
    """Exercise 07.1: bytes of raw float32 vectors for ``rows`` × ``dim``."""
    expected = rows * dim * 4
    ok = isinstance(answer, (int, float)) and abs(float(answer) - expected) <= 0.01 * expected
    return _verdict(ok, f"{rows:,} × {dim} × 4 bytes = {expected / 2**20:,.1f} MiB of raw vectors; "
                        "an HNSW graph and the text fields come on top.",
                    "a float32 takes 4 bytes; one vector has dim of them.")


def check_restored(store: MilvusStore, chunks: Sequence[Chunk], vectors: np.ndarray) -> bool:
    """Exercise 07.2: ``store`` is a complete restore of the knowledge base."""
    count = store.count()
    sample = list(range(0, len(chunks), max(1, len(chunks) // 20)))
    top = [hits[0].id if hits else None for hits in store.search(vectors[sample], k=1)]
    ok = count == len(chunks) and top == [chunks[i].id for i in sample]
    return _verdict(ok, f"{store.collection}: {count} chunks, each sampled chunk finds itself first.",
                    "backup.import_collection(client, backup_folder, 'your_name'), then open it with "
                    "MilvusStore(uri, 'your_name', create=False).")


def check_fastest_at(answer: object, curves: "pd.DataFrame", min_recall: float) -> bool:
    """Exercise 04.1: (index, value) of the highest-QPS configuration reaching ``min_recall``."""
    from .indexes import fastest_at

    best = fastest_at(curves, min_recall)
    if best is None:
        return _verdict(answer is None, f"no configuration reaches recall {min_recall}.",
                        f"no row has recall ≥ {min_recall}: the answer is None.")
    expected = (best["index"], best["value"])
    ok = isinstance(answer, tuple) and len(answer) == 2 and answer[0] == expected[0] and str(answer[1]) == str(expected[1])
    return _verdict(ok, f"{expected[0]} at {best['param']}={expected[1]}: {best['qps']:,.0f} QPS, recall {best['recall']:.3f}.",
                    f"keep the rows with recall ≥ {min_recall}, take the one with the largest qps, "
                    "answer (its index, its value).")


def check_pq_bytes(answer: object, dim: int, m: int, nbits: int = 8) -> bool:
    """Exercise 04.2: how many times smaller IVF_PQ's codes are than float32 vectors."""
    expected = dim * 4 / (m * nbits / 8)
    ok = isinstance(answer, (int, float)) and abs(float(answer) - expected) < 1e-6
    return _verdict(ok, f"{dim} float32 = {dim * 4} bytes; {m} codes of {nbits} bits = {m * nbits // 8} bytes: "
                        f"{expected:.0f}× smaller (plus the cluster ids and codebooks).",
                    "a float32 vector takes dim × 4 bytes; a PQ code takes m × nbits / 8 bytes.")


def check_smallest_value(answer: object, grid: "pd.DataFrame", config: str, min_recall: float) -> bool:
    """Exercise 05.1: the smallest search-parameter value of ``config`` reaching ``min_recall``."""
    ok_rows = grid[(grid["config"] == config) & (grid["recall"] >= min_recall)]
    expected = None if ok_rows.empty else ok_rows["value"].min()
    ok = answer == expected
    return _verdict(ok, f"{config}: {expected} is the smallest value reaching recall {min_recall}."
                    if expected is not None else f"no {config} setting reaches recall {min_recall}.",
                    f"keep the rows of config {config!r} with recall ≥ {min_recall}, take the smallest value.")


def check_growth(answer: object, scaling: "pd.DataFrame", column: str) -> bool:
    """Exercise 05.2: largest-size value of ``column`` divided by the smallest-size one."""
    col = scaling.sort_values("rows")[column]
    expected = float(col.iloc[-1] / col.iloc[0])
    ok = isinstance(answer, (int, float)) and abs(float(answer) - expected) <= 1e-6 * max(1.0, expected)
    return _verdict(ok, f"{column} grew {expected:.1f}× from {scaling['rows'].min():,} to {scaling['rows'].max():,} rows.",
                    "sort by rows, divide the last value of the column by the first.")
