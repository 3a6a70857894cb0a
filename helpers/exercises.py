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
