"""The guide's ``rag_engine`` retrieval path, and what to check when it finds nothing.

question → embedding → top-k above a similarity threshold → passages assembled into a prompt.
No LLM is called: the prompt is what the application would send. The same functions run on
Chroma and on Milvus (``helpers.stores``), so their answers can be compared passage by passage.

``diagnose_empty_results`` runs, in order, the checks the guide names for "search returns
0 results": is the collection loaded, does it hold entities (and are they flushed), and is
the threshold above the best similarity the store can offer.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from .embed import embed_query
from .errors import KitError, StoreError
from .stores import ChromaStore, Hit, MilvusStore

PROMPT_HEADER = ("Answer the question using only the numbered passages below. Cite the passages "
                 "you use as [n]. If they do not contain the answer, say so.")


@dataclass(frozen=True)
class Retrieval:
    """What one question retrieved from one store."""

    store: str
    question: str
    hits: list[Hit]
    k: int
    threshold: float | None

    @property
    def ids(self) -> list[str]:
        """The retrieved chunk ids, best first."""
        return [h.id for h in self.hits]


@contextmanager
def quiet_pymilvus() -> Iterator[None]:
    """Silence pymilvus's and Milvus Lite's error logs (tracebacks printed before the client
    raises) for a block: the caller reports the error itself."""
    loggers = [logging.getLogger(name) for name in ("pymilvus", "milvus_lite")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def retrieve(store: ChromaStore | MilvusStore, question: str, k: int = 5,
             threshold: float | None = None, query_vector: np.ndarray | None = None) -> Retrieval:
    """The top-``k`` passages for ``question`` with similarity ≥ ``threshold``.

    ``query_vector`` skips the embedding when the caller already has it. A Milvus collection
    that is not loaded raises StoreError saying so (the guide's "0 results" hides this error).
    """
    if k < 1:
        raise KitError(f"k = {k}: ask for at least one passage (k ≥ 1).")
    if threshold is not None and not -1.0 <= threshold <= 1.0:
        raise KitError(f"threshold = {threshold}: a cosine similarity lies in [-1, 1]; "
                       "use e.g. 0.5 (Chroma distances convert as similarity = 1 − distance).")
    vec = embed_query(question) if query_vector is None else query_vector
    try:
        with quiet_pymilvus():
            hits = store.search(vec, k=k, threshold=threshold)[0]
    except KitError:
        raise
    except Exception as exc:  # pymilvus raises MilvusException subclasses
        if "not loaded" in str(exc) or "released" in str(exc):
            raise StoreError(f"{store.name} collection {_collection_name(store)!r} is not loaded, "
                             "so it cannot be searched: call client.load_collection("
                             f"{_collection_name(store)!r}) first.") from None
        raise
    return Retrieval(store.name, question, hits, k, threshold)


def build_prompt(question: str, hits: Sequence[Hit], max_context_chars: int = 4000) -> str:
    """The prompt the guide's ``rag_engine`` would send: numbered passages, then the question.

    Passages are added best first until ``max_context_chars`` is reached (the last one cut).
    With no passages the prompt says so, so the model can answer "I don't know".
    """
    parts, used = [], 0
    for n, hit in enumerate(hits, 1):
        room = max_context_chars - used
        if room <= 0:
            break
        text = hit.text.strip()
        text = text if len(text) <= room else text[:room].rstrip() + " …"
        section = hit.metadata.get("section") or ""
        source = f"{hit.doc_id} § {section}" if section else hit.doc_id
        parts.append(f"[{n}] ({source}; similarity {hit.similarity:.2f})\n{text}")
        used += len(text)
    context = "\n\n".join(parts) if parts else "(no passage passed the similarity threshold)"
    return f"{PROMPT_HEADER}\n\nContext:\n{context}\n\nQuestion: {question}\nAnswer:"


def overlap_at_k(a: Sequence[Sequence[str]], b: Sequence[Sequence[str]], k: int) -> np.ndarray:
    """Per query, the share of the first ``k`` ids of ``a`` that are among the first ``k`` of ``b``."""
    if len(a) != len(b) or k < 1:
        raise KitError("overlap_at_k needs two lists with one ranked list per query, and k ≥ 1.")
    return np.array([len(set(x[:k]) & set(y[:k])) / k for x, y in zip(a, b)], dtype=float)


# --------------------------------------------------------------------------- diagnosis
@dataclass(frozen=True)
class Check:
    """One check of the diagnosis: what was asked, what the store answered, whether it is fine."""

    check: str
    result: str
    ok: bool


@dataclass
class Diagnosis:
    """The checks run, in the guide's order, and the first cause found with its fix."""

    store: str
    checks: list[Check] = field(default_factory=list)
    cause: str = "none found: the store answers and the threshold is reachable"
    fix: str = ""

    @property
    def healthy(self) -> bool:
        """True when no check failed."""
        return all(c.ok for c in self.checks)

    def _fail(self, cause: str, fix: str) -> None:
        if not self.fix:  # keep the first cause found
            self.cause, self.fix = cause, fix

    def table(self):  # -> pandas.DataFrame
        """The checks as a table (check, result, ok)."""
        import pandas as pd

        return pd.DataFrame([c.__dict__ for c in self.checks])

    def __str__(self) -> str:
        lines = [f"{self.store}:"]
        lines += [f"  {'✓' if c.ok else '✗'} {c.check}: {c.result}" for c in self.checks]
        lines.append(f"  cause: {self.cause}" + (f"\n  fix  : {self.fix}" if self.fix else ""))
        return "\n".join(lines)


def _collection_name(store: ChromaStore | MilvusStore) -> str:
    return store.collection if isinstance(store, MilvusStore) else store.collection.name


def diagnose_empty_results(store: ChromaStore | MilvusStore, query_vector: np.ndarray,
                           threshold: float | None = None) -> Diagnosis:
    """Why would ``store`` return no passage for ``query_vector`` at ``threshold``?

    Milvus: load state, live entity count (``count(*)``, strong), flushed row count
    (``get_collection_stats``), then the best similarity without a threshold. Chroma: the
    record count and the best similarity. Nothing is changed in the store.
    """
    diag = Diagnosis(store.name)
    if isinstance(store, MilvusStore):
        client, name = store.client, store.collection
        state = str(client.get_load_state(name)["state"]).split(".")[-1].rstrip(">")
        loaded = "NotLoad" not in state
        diag.checks.append(Check("load state", state, loaded))
        if not loaded:
            diag._fail("the collection is released (not loaded): searches cannot run",
                       f"client.load_collection({name!r})")
            return diag
    count = store.count()
    diag.checks.append(Check("entity count", f"{count:,}", count > 0))
    if count == 0:
        diag._fail("the collection holds no entities: nothing was inserted (or all was deleted)",
                   "insert the documents (add_documents) and flush")
        return diag
    if isinstance(store, MilvusStore):
        flushed = int(store.client.get_collection_stats(store.collection)["row_count"])
        diag.checks.append(Check("flushed rows (get_collection_stats)", f"{flushed:,}",
                                 flushed >= count))
        if flushed < count:
            diag._fail(f"{count - flushed:,} of {count:,} entities are not flushed yet: a search with "
                       "Bounded or Eventually consistency may not see them",
                       f"client.flush({store.collection!r}), or search with consistency_level='Strong'")
    best = store.search(query_vector, k=1)[0]
    top = best[0].similarity if best else float("nan")
    reachable = threshold is None or (bool(best) and top >= threshold)
    shown = "none" if threshold is None else f"{threshold:.2f}"
    diag.checks.append(Check("best similarity without threshold",
                             f"{top:.3f} (threshold {shown})", reachable))
    if not reachable:
        diag._fail(f"the threshold {threshold:.2f} is above the best similarity {top:.3f}",
                   f"lower the threshold below {top:.2f} (or fix the query/embedding model)")
    return diag


# --------------------------------------------------------------------------- the metric trap
METRICS = {  # label → (store, metric as the store names it, "similarity" or "distance")
    "Milvus COSINE": ("milvus", "COSINE", "similarity"),
    "Chroma cosine": ("chroma", "cosine", "distance"),
    "Milvus L2": ("milvus", "L2", "distance"),
    "Chroma l2": ("chroma", "l2", "distance"),
}


def to_similarity(raw: np.ndarray | float, label: str) -> np.ndarray:
    """Turn a store's raw score (a ``METRICS`` label) into cosine similarity, for unit vectors.

    Milvus COSINE is already cos; Chroma cosine is 1 − cos; both stores' L2 is the *squared*
    distance, which for unit vectors is 2 − 2·cos.
    """
    raw = np.asarray(raw, dtype=float)
    metric = METRICS[label][1].lower()
    if metric == "cosine":
        return raw if label.startswith("Milvus") else 1.0 - raw
    return 1.0 - raw / 2.0


def scores_by_metric(ids: Sequence[str], vectors: np.ndarray, queries: np.ndarray, k: int,
                     chroma_client, milvus_client, prefix: str = "metric_demo",
                     ) -> dict[str, tuple[list[list[str]], np.ndarray]]:
    """Search the same vectors stored under each metric of ``METRICS``; ids and raw scores.

    Builds one throw-away collection per store and metric (ids and vectors only, exact
    search: FLAT in Milvus, Chroma's HNSW at this small size), searches ``queries`` top-``k``
    and drops the collections again. Returns label → (ids per query, raw scores (n, k)).
    """
    from pymilvus import DataType

    vecs = np.asarray(vectors, np.float32)
    out: dict[str, tuple[list[list[str]], np.ndarray]] = {}
    for label, (store, metric, _) in METRICS.items():
        name = f"{prefix}_{metric.lower()}"
        if store == "chroma":
            col = chroma_client.get_or_create_collection(
                name, embedding_function=None, configuration={"hnsw": {"space": metric}})
            try:
                for i in range(0, len(ids), 5000):
                    col.add(ids=list(ids[i:i + 5000]), embeddings=vecs[i:i + 5000])
                res = col.query(query_embeddings=np.asarray(queries, np.float32), n_results=k,
                                include=["distances"])
                out[label] = (res["ids"], np.array(res["distances"], dtype=float))
            finally:
                chroma_client.delete_collection(name)
            continue
        if milvus_client.has_collection(name):
            milvus_client.drop_collection(name)
        schema = milvus_client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=vecs.shape[1])
        index = milvus_client.prepare_index_params()
        index.add_index("embedding", index_type="FLAT", metric_type=metric)
        milvus_client.create_collection(name, schema=schema, index_params=index,
                                        consistency_level="Strong")
        try:
            for i in range(0, len(ids), 1000):
                milvus_client.insert(name, [{"id": j, "embedding": v.tolist()}
                                            for j, v in zip(ids[i:i + 1000], vecs[i:i + 1000])])
            milvus_client.flush(name)
            milvus_client.load_collection(name)
            res = milvus_client.search(name, data=np.asarray(queries, np.float32).tolist(), limit=k,
                                       search_params={"metric_type": metric})
            out[label] = ([[str(h["id"]) for h in hits] for hits in res],
                          np.array([[h["distance"] for h in hits] for hits in res], dtype=float))
        finally:
            milvus_client.drop_collection(name)
    return out
