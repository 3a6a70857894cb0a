"""Index types, measured: which ones the running Milvus really builds, what each costs to build
and to keep, and how its recall@k trades against queries per second over its main search parameter.

Every figure is taken against exact search (numpy) on the same vectors and queries:

- ``probe``: ask Milvus for one index type and report, separately, what ``create_index``
  answered, what ``describe_index`` claims, and what a search actually does (approximate, or
  exact because no index is used): Milvus Lite names indexes it never builds;
- ``build``: create an index and wait for it, bounded (a server retries a failing build forever);
- ``sweep``: recall@k and batched QPS at each value of the index's search parameter;
- ``pareto_front``: the configurations no other one beats on both recall and QPS;
- ``chroma_sweep``: the same curve for Chroma's HNSW over ``ef_search``;
- ``call_cost``: what one call costs, whatever it asks, and how that grows with the collection.

The index sweeps use a minimal collection (INT64 row number as primary key, one vector field):
ids are row numbers, so results compare directly with ``bench.exact_search``.
"""

from __future__ import annotations

import logging
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from .bench import folder_bytes
from .errors import StoreError

FIELD = "embedding"
METRIC = "COSINE"


@dataclass(frozen=True)
class IndexKind:
    """One Milvus index type: how it is built, its main search parameter and the values swept."""

    index_type: str
    build: dict[str, Any]
    param: str | None  # the search parameter that trades recall for speed (None: exact)
    values: tuple[Any, ...]
    how: str
    extra: dict[str, Any] = field(default_factory=dict)  # fixed search parameters

    def search_params(self, value: Any = None) -> dict[str, Any]:
        """The ``search_params`` of one search at ``value`` of the main parameter."""
        params = dict(self.extra)
        if self.param is not None and value is not None:
            params[self.param] = value
        return {"metric_type": METRIC, "params": params}


NLIST = 128
INDEX_KINDS: dict[str, IndexKind] = {
    "FLAT": IndexKind("FLAT", {}, None, (None,),
                      "No index: each query is compared with every vector. Exact, and the cost "
                      "grows linearly with the collection."),
    "IVF_FLAT": IndexKind("IVF_FLAT", {"nlist": NLIST}, "nprobe", (1, 4, 16, 64),
                          "k-means splits the vectors into nlist clusters; a query scans only the "
                          "nprobe clusters whose centres are nearest. Raw vectors kept."),
    "IVF_SQ8": IndexKind("IVF_SQ8", {"nlist": NLIST}, "nprobe", (1, 4, 16, 64),
                         "IVF's clusters, each vector stored as 8-bit integers (4× smaller than "
                         "float32), so distances are slightly approximate."),
    # m=32 codes of 4 bits: the same 16 bytes a vector as m=16 × 8 bits, ~8× faster to train on
    # the 2.3.5 server (5 s instead of 16–35 s for 20k rows on 2 cores), for a little recall.
    "IVF_PQ": IndexKind("IVF_PQ", {"nlist": NLIST, "m": 32, "nbits": 4}, "nprobe", (1, 4, 16, 64),
                        "IVF's clusters with product quantization: the 384 dimensions are cut into "
                        "m=32 pieces, each replaced by one of 16 learnt codes (4 bits): 16 bytes per "
                        "vector instead of 1,536. Smallest memory, lowest recall ceiling."),
    # SCANN keeps raw data by default; passing with_raw_data=True makes the 2.3.5 server's build
    # fail ("type conflict in json") and retry forever.
    "SCANN": IndexKind("SCANN", {"nlist": NLIST}, "nprobe", (1, 4, 16, 64),
                       "IVF with 4-bit PQ codes scored by fast SIMD table look-ups, then the best "
                       "reorder_k candidates re-ranked with the raw vectors.",
                       extra={"reorder_k": 100}),
    "HNSW": IndexKind("HNSW", {"M": 16, "efConstruction": 100}, "ef", (10, 20, 40, 80, 160),
                      "A layered graph linking each vector to M neighbours; a query walks it "
                      "greedily, keeping ef candidates. Fast and accurate, most memory."),
    "HNSW_SQ": IndexKind("HNSW_SQ", {"M": 16, "efConstruction": 100}, "ef", (10, 20, 40, 80, 160),
                         "HNSW's graph over 8-bit quantized vectors: less memory, a little recall lost."),
    "DISKANN": IndexKind("DISKANN", {}, "search_list", (20, 50, 100),
                         "A Vamana graph kept on SSD with compressed vectors in memory: for "
                         "collections larger than RAM."),
    "AUTOINDEX": IndexKind("AUTOINDEX", {}, None, (None,),
                           "Milvus picks the index itself (on Zilliz Cloud and 2.4+ servers: HNSW-like)."),
}


def kinds(names: Iterable[str]) -> list[IndexKind]:
    """The ``IndexKind`` of each name, with a clear error for an unknown one."""
    out = []
    for name in names:
        if name not in INDEX_KINDS:
            raise StoreError(f"Unknown index type {name!r}: use one of {', '.join(INDEX_KINDS)}.")
        out.append(INDEX_KINDS[name])
    return out


# ----------------------------------------------------------------------------- collections
def vector_collection(client: Any, name: str, vectors: np.ndarray, batch_size: int = 5000,
                      consistency_level: str = "Bounded") -> float:
    """(Re)create collection ``name`` holding ``vectors`` (ids = row numbers), flushed, no index.

    Returns the seconds the insert and flush took.
    """
    from pymilvus import DataType

    vecs = np.ascontiguousarray(vectors, dtype=np.float32)
    if client.has_collection(name):
        client.drop_collection(name)
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field(FIELD, DataType.FLOAT_VECTOR, dim=vecs.shape[1])
    client.create_collection(name, schema=schema, consistency_level=consistency_level)
    start = time.perf_counter()
    as_lists = vecs.tolist()
    for i in range(0, len(vecs), batch_size):
        client.insert(name, [{"id": j, FIELD: as_lists[j]} for j in range(i, min(i + batch_size, len(vecs)))])
    client.flush(name)
    return time.perf_counter() - start


def _drop_index(client: Any, name: str) -> None:
    client.release_collection(name)
    if FIELD in client.list_indexes(name):
        client.drop_index(name, FIELD)


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the tracebacks pymilvus and Milvus Lite log for an error this module reports itself."""
    loggers = [logging.getLogger(n) for n in ("pymilvus", "milvus_lite")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _short(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return re.sub(r"\s+", " ", text).strip()[:200]


@dataclass
class Build:
    """What happened when an index was asked for: built (with timings) or why not."""

    index_type: str
    state: str  # "built", "refused", "failed", "timed out"
    detail: str = ""
    index_s: float = float("nan")  # create_index until every row is indexed
    load_s: float = float("nan")  # load_collection afterwards (Lite builds its indexes here)

    @property
    def built(self) -> bool:
        """Whether searches can use this index now."""
        return self.state == "built"


def build(client: Any, name: str, kind: IndexKind, timeout: float = 120.0) -> Build:
    """Replace the collection's vector index by ``kind``, wait until it covers every row, load it.

    A server builds asynchronously and retries a failing build without end (DISKANN on the
    2.3.5 server): after ``timeout`` seconds the index is dropped and the result says so.
    Milvus Lite records the index at ``create_index`` and builds it at ``load_collection``.
    """
    _drop_index(client, name)
    params = client.prepare_index_params()
    params.add_index(FIELD, index_type=kind.index_type, metric_type=METRIC, params=kind.build)
    start = time.perf_counter()
    try:
        with _quiet():
            client.create_index(name, params, sync=False)
    except Exception as exc:  # pymilvus raises MilvusException, Lite also plain errors
        _cleanup(client, name)
        return Build(kind.index_type, "refused", f"create_index: {_short(exc)}")
    state, info = wait_for_index(client, name, timeout)
    if state != "Finished":
        _cleanup(client, name)
        if state == "Failed":
            return Build(kind.index_type, "failed", f"index state Failed: {info.get('fail_reason', '')}")
        return Build(kind.index_type, "timed out",
                     f"still {state} with {info.get('indexed_rows', 0):,} of "
                     f"{info.get('total_rows', 0):,} rows indexed after {timeout:.0f} s; index dropped")
    index_s = time.perf_counter() - start
    start = time.perf_counter()
    try:
        client.load_collection(name)
    except Exception as exc:
        _cleanup(client, name)
        return Build(kind.index_type, "failed", f"load_collection: {_short(exc)}")
    return Build(kind.index_type, "built", "", index_s, time.perf_counter() - start)


def wait_for_index(client: Any, name: str, timeout: float) -> tuple[str, dict[str, Any]]:
    """Wait (at most ``timeout`` s) until the vector index covers every row or fails.

    Returns the last state ("Finished", "Failed", or the state it was still in) and describe_index.
    """
    deadline = time.monotonic() + timeout
    while True:
        info = client.describe_index(name, FIELD) or {}
        state = info.get("state", "Finished")
        if state == "Failed" or (state == "Finished" and info.get("indexed_rows", 0) >= info.get("total_rows", 0)):
            return state, info
        if time.monotonic() > deadline:
            return state, info
        time.sleep(0.2)


def _cleanup(client: Any, name: str) -> None:
    """Drop whatever index a failed attempt left recorded (Lite keeps it, a server retries it)."""
    try:
        _drop_index(client, name)
    except Exception:  # nothing recorded, or the collection is released already
        pass


# ----------------------------------------------------------------------------- searching
def search_ids(client: Any, name: str, queries: np.ndarray, k: int, search_params: dict[str, Any],
               batch_size: int | None = None) -> np.ndarray:
    """Row ids of the top-``k`` hits per query (-1 where fewer came back), ``batch_size`` per call."""
    q = np.asarray(queries, np.float32)
    size = batch_size or len(q)
    out = np.full((len(q), k), -1, dtype=np.int64)
    for i in range(0, len(q), size):
        res = client.search(name, data=q[i:i + size].tolist(), limit=k, anns_field=FIELD,
                            search_params=search_params)
        for r, hits in enumerate(res, start=i):
            found = [int(h["id"]) for h in hits]
            out[r, :len(found)] = found
    return out


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Recall@k of row-id arrays: share of the true neighbours found (micro-averaged)."""
    k = truth.shape[1]
    return float(np.mean([len(set(f[:k]) & set(t)) / k for f, t in zip(found, truth)]))


def timed_search(client: Any, name: str, queries: np.ndarray, k: int, search_params: dict[str, Any],
                 batch_size: int | None = None, repeats: int = 2) -> tuple[np.ndarray, float]:
    """The found ids and the best queries-per-second of ``repeats`` timed passes (after a warm-up)."""
    found = search_ids(client, name, queries, k, search_params, batch_size)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        search_ids(client, name, queries, k, search_params, batch_size)
        best = min(best, time.perf_counter() - start)
    return found, len(queries) / best


def sweep(client: Any, name: str, kind: IndexKind, queries: np.ndarray, truth: np.ndarray,
          values: Sequence[Any] | None = None, batch_size: int | None = None,
          repeats: int = 2) -> pd.DataFrame:
    """Recall@k (k = truth's width) and batched QPS at each value of the index's search parameter."""
    k = truth.shape[1]
    rows = []
    for value in (values if values is not None else kind.values):
        found, qps = timed_search(client, name, queries, k, kind.search_params(value), batch_size, repeats)
        rows.append({"index": kind.index_type, "param": kind.param or "-", "value": value,
                     "recall": recall(found, truth), "qps": qps})
    return pd.DataFrame(rows)


def pareto_front(df: pd.DataFrame, x: str = "recall", y: str = "qps") -> pd.DataFrame:
    """The rows no other row beats on both ``x`` and ``y`` (higher is better), sorted by ``x``."""
    ordered = df.sort_values([x, y], ascending=[False, False])
    keep, best_y = [], -np.inf
    for idx, row in ordered.iterrows():
        if row[y] > best_y:
            keep.append(idx)
            best_y = row[y]
    return df.loc[keep].sort_values(x)


def fastest_at(df: pd.DataFrame, min_recall: float) -> pd.Series | None:
    """The row with the highest QPS among those reaching ``min_recall`` (None when none does)."""
    ok = df[df["recall"] >= min_recall]
    return None if ok.empty else ok.loc[ok["qps"].idxmax()]


# ----------------------------------------------------------------------------- what is really built
def probe(client: Any, name: str, kind: IndexKind, queries: np.ndarray, truth: np.ndarray,
          timeout: float = 30.0) -> dict[str, Any]:
    """Ask for ``kind`` and report what create_index said, what describe_index claims, and what
    search really does.

    The search check: at the most approximate setting (the first sweep value), an index that is
    used loses some neighbours; a recall of exactly 1.0 at that setting, equal to the most generous
    one, means the search compared every vector: no index was used, whatever describe_index says.
    """
    _drop_index(client, name)
    params = client.prepare_index_params()
    params.add_index(FIELD, index_type=kind.index_type, metric_type=METRIC, params=kind.build)
    row: dict[str, Any] = {"asked for": kind.index_type}
    try:
        with _quiet():
            client.create_index(name, params, sync=False)
        row["create_index"] = "accepted"
    except Exception as exc:
        row["create_index"] = f"error: {_short(exc)}"
    try:
        info = client.describe_index(name, FIELD) or {}
        row["describe_index says"] = f"{info.get('index_type', '-')} ({info.get('state', '-')})" if info else "no index"
    except Exception as exc:
        row["describe_index says"] = f"no index ({_short(exc)[:60]})"
    row["search"] = _search_behaviour(client, name, kind, queries, truth, timeout)
    _cleanup(client, name)
    return row


def _search_behaviour(client: Any, name: str, kind: IndexKind, queries: np.ndarray,
                      truth: np.ndarray, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:  # a server builds in the background: wait (bounded) for the rows to be indexed
        info = client.describe_index(name, FIELD) if FIELD in client.list_indexes(name) else {}
        if not info or info.get("state", "Finished") != "InProgress":
            break
        if time.monotonic() > deadline:
            return f"not searchable: build still InProgress after {timeout:.0f} s"
        time.sleep(0.2)
    try:
        client.load_collection(name)
    except Exception as exc:
        return f"load_collection fails: {_short(exc)[:120]}"
    # the cheapest setting of the index asked for; without a parameter, the cheapest of any
    cheapest = (kind.search_params(kind.values[0]) if kind.param
                else {"metric_type": METRIC, "params": {"ef": 10, "nprobe": 1}})
    r_low = recall(search_ids(client, name, queries, truth.shape[1], cheapest), truth)
    if r_low >= 0.9999:
        return f"exact (recall {r_low:.3f} at the cheapest setting): no index used"
    return f"approximate (recall {r_low:.3f} at the cheapest setting): an index is used"


def server_build_errors(log_dir: str | Path) -> list[str]:
    """The distinct reasons a local server's index node gave for failed builds (its stdout log).

    A failing build is retried without end while ``describe_index`` still says InProgress with
    no reason: the server's log is the only place that says why.
    """
    log = Path(log_dir) / "milvus-stdout.log"
    if not log.exists():
        return []
    text = log.read_text(encoding="utf-8", errors="replace")
    found = re.findall(r'"failed to build index"\] \[error="([^"]*)"', text)
    return list(dict.fromkeys(re.sub(r"\\n|\s+", " ", f).strip() for f in found))


# ----------------------------------------------------------------------------- size on disk
def lite_index_files(db_path: str | Path, collection: str) -> list[Path]:
    """The vector-index files Milvus Lite keeps for ``collection`` (their names say the real type)."""
    root = Path(db_path) / "collections" / collection / "partitions"
    return sorted(p for p in root.glob(f"*/indexes/*.{FIELD}.*") if p.is_file())


def lite_index_bytes(db_path: str | Path, collection: str) -> int:
    """Bytes of Milvus Lite's vector-index files for ``collection``."""
    return sum(folder_bytes(p) for p in lite_index_files(db_path, collection))


def server_index_bytes(data_dir: str | Path, collection_id: int | str) -> int:
    """Bytes of the current index files of one collection on a local Milvus 2.3 server.

    The server stores ``index_files/<build>/<version>/<partition>/<segment>/…`` and removes a
    dropped index's files only later: per segment of the collection (found under
    ``insert_log/<collection>/<partition>/<segment>``) only the newest build (the largest build
    id, the server allocates them in increasing order) is counted.
    """
    data = Path(data_dir)
    segments = {p.name for p in (data / "insert_log" / str(collection_id)).glob("*/*")}
    newest: dict[str, Path] = {}
    for path in (data / "index_files").glob("*/*/*/*"):
        build_id = path.parts[-4]
        if path.name in segments and (path.name not in newest or int(build_id) > int(newest[path.name].parts[-4])):
            newest[path.name] = path
    return sum(folder_bytes(p) for p in newest.values())


# ----------------------------------------------------------------------------- the cost of a call
def call_cost(client: Any, name: str, query: np.ndarray, search_params: dict[str, Any],
              calls: int = 20) -> dict[str, float]:
    """Median milliseconds of calls that touch no rows, count rows, or search one query.

    ``has_collection`` reads only metadata; ``get_collection_stats`` counts rows; one-query
    top-10 searches run at each consistency level (``search_params`` as given).
    """
    q = np.asarray(query, np.float32).reshape(1, -1).tolist()

    def search(level: str):
        return lambda: client.search(name, q, limit=10, anns_field=FIELD, search_params=search_params,
                                     consistency_level=level)

    probes = {"has_collection": lambda: client.has_collection(name),
              "get_collection_stats": lambda: client.get_collection_stats(name),
              **{f"search, {level}": search(level) for level in ("Strong", "Bounded", "Eventually")}}
    out = {}
    for label, call in probes.items():
        call()
        secs = []
        for _ in range(calls):
            start = time.perf_counter()
            call()
            secs.append(time.perf_counter() - start)
        out[label] = float(np.median(secs) * 1000)
    return out


# ----------------------------------------------------------------------------- Chroma
def chroma_collection(path: str | Path, name: str, vectors: np.ndarray, m: int = 16,
                      ef_construction: int = 100, ef_search: int = 100) -> float:
    """(Re)create a Chroma collection of ``vectors`` (ids = row numbers); return the insert seconds."""
    import chromadb

    from .stores import CHROMA_MAX_BATCH

    client = chromadb.PersistentClient(path=str(path))
    if name in [c.name for c in client.list_collections()]:
        client.delete_collection(name)
    col = client.create_collection(name, embedding_function=None, configuration={"hnsw": {
        "space": "cosine", "max_neighbors": m, "ef_construction": ef_construction, "ef_search": ef_search}})
    vecs = np.asarray(vectors, np.float32)
    start = time.perf_counter()
    for i in range(0, len(vecs), CHROMA_MAX_BATCH):
        col.add(ids=[str(j) for j in range(i, min(i + CHROMA_MAX_BATCH, len(vecs)))],
                embeddings=vecs[i:i + CHROMA_MAX_BATCH])
    return time.perf_counter() - start


def chroma_with_ef(path: str | Path, name: str, ef_search: int) -> Any:
    """The collection re-opened so that its HNSW really searches with ``ef_search``.

    ``modify(configuration={"hnsw": {"ef_search": N}})`` is stored at once but the open index
    keeps its old ef until it is loaded again: this stores it, clears chromadb's process-wide
    client cache (so the next client loads the index afresh) and opens a new client.
    Chroma clients opened earlier in this process must be re-opened after this.
    """
    import chromadb
    from chromadb.api.client import SharedSystemClient

    chromadb.PersistentClient(path=str(path)).get_collection(name, embedding_function=None).modify(
        configuration={"hnsw": {"ef_search": ef_search}})
    SharedSystemClient.clear_system_cache()
    col = chromadb.PersistentClient(path=str(path)).get_collection(name, embedding_function=None)
    applied = col.configuration["hnsw"]["ef_search"]
    if applied != ef_search:
        raise StoreError(f"Chroma kept ef_search={applied} for {name!r} instead of {ef_search}.")
    return col


def chroma_ids(col: Any, queries: np.ndarray, k: int) -> np.ndarray:
    """Row ids of Chroma's top-``k`` per query (one call for all queries)."""
    res = col.query(query_embeddings=np.asarray(queries, np.float32), n_results=k, include=[])
    return np.array([[int(i) for i in row] + [-1] * (k - len(row)) for row in res["ids"]], dtype=np.int64)


def chroma_sweep(path: str | Path, name: str, queries: np.ndarray, truth: np.ndarray,
                 efs: Sequence[int] = (10, 20, 40, 80, 160), repeats: int = 2) -> pd.DataFrame:
    """Chroma's recall@k and batched QPS at each ``ef_search`` (each applied as ``chroma_with_ef`` does)."""
    k = truth.shape[1]
    rows = []
    for ef in efs:
        col = chroma_with_ef(path, name, ef)
        found = chroma_ids(col, queries, k)
        best = np.inf
        for _ in range(repeats):
            start = time.perf_counter()
            chroma_ids(col, queries, k)
            best = min(best, time.perf_counter() - start)
        rows.append({"index": "Chroma HNSW", "param": "ef_search", "value": ef,
                     "recall": recall(found, truth), "qps": len(queries) / best})
    return pd.DataFrame(rows)
