"""One benchmark harness for every store: the same data, the same queries, in the same run.

Every store goes through the same functions (Chroma, Milvus Lite, a Milvus server, and the
physical reference: exact search by a numpy matrix product, ``ExactSearch``):

- ``measure_latency``: single-query latency (median, p95, p99) per top-k, after a warm-up;
- ``measure_qps``: queries per second with 1, 2, 4 … concurrent clients (threads);
- ``measure_recall``: recall@k against exact search, at each similarity threshold;
- ``measure_inserts``: insert throughput per batch size, into a fresh collection;
- ``fresh_process_memory`` / ``folder_bytes`` / ``server_collection_bytes``: memory and disk.

Results are pandas DataFrames, one row per store; ``with_ratios`` adds each store's ratio to a
baseline store beside the absolute values, and ``verdict`` turns a measured ratio and a claimed
one into "confirmed" / "refuted" / "no clear difference".

``python -m helpers.bench memory --kind chroma|lite --location PATH --collection NAME
--queries FILE.npy`` is the fresh process ``fresh_process_memory`` starts: it opens the
collection, answers the queries and prints its resident memory before and after, as JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .corpus import Chunk
from .errors import StoreError
from .retrieval import exact_top_k
from .stores import ChromaStore, Hit, MilvusStore, VectorStore

THRESHOLDS = (0.5, 0.7, 0.9)  # the guide's recall table
PERCENTILES = (50, 95, 99)


# ----------------------------------------------------------------------------- reference
class ExactSearch:
    """The physical reference: exact cosine top-k by one numpy matrix product, no index."""

    name = "exact (numpy)"

    def __init__(self, vectors: np.ndarray, ids: Sequence[str]) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.ids = list(ids)

    def search(self, query_embeddings: np.ndarray, k: int = 5,
               threshold: float | None = None) -> list[list[Hit]]:
        """Exact top-``k`` hits per query (similarity = inner product of unit vectors)."""
        q = np.atleast_2d(np.asarray(query_embeddings, np.float32))
        idx, sims = exact_search(self.vectors, q, k)
        return [[Hit(self.ids[i], float(s), float(s), "") for i, s in zip(row, srow)
                 if threshold is None or s >= threshold] for row, srow in zip(idx, sims)]

    def count(self) -> int:
        """Rows searched."""
        return len(self.ids)


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` row indices and their cosine similarities, best first."""
    idx = exact_top_k(vectors, queries, k)
    sims = np.einsum("qd,qkd->qk", np.asarray(queries, np.float32), np.asarray(vectors, np.float32)[idx])
    return idx, sims


class _ConsistencyClient:
    """A MilvusClient whose searches all run at one consistency level."""

    def __init__(self, client: Any, level: str) -> None:
        self._client, self._level = client, level

    def search(self, *args: Any, **kwargs: Any) -> Any:
        return self._client.search(*args, consistency_level=self._level, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def with_consistency(store: MilvusStore, level: str = "Bounded") -> MilvusStore:
    """A view of the same Milvus store whose searches run at ``level`` ("Strong", "Bounded", …).

    The kit's collections default to Strong, so a search sees every earlier write; on a server
    that makes each search wait for the next time tick (about 200 ms). Bounded is Milvus's own
    default and what a read-mostly RAG service uses. Milvus Lite has no time ticks. The view
    shares the store's client: close the store or the view, not both.
    """
    view = copy.copy(store)
    base = store.client._client if isinstance(store.client, _ConsistencyClient) else store.client
    view.client = _ConsistencyClient(base, level)
    return view


# ----------------------------------------------------------------------------- maths
def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """Median, p95, p99 and mean of per-query latencies, in milliseconds."""
    ms = np.asarray(seconds, dtype=float) * 1000.0
    if ms.size == 0:
        raise ValueError("latency_summary needs at least one timed query.")
    p50, p95, p99 = np.percentile(ms, PERCENTILES)
    return {"median_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99),
            "mean_ms": float(ms.mean()), "queries": int(ms.size)}


def recall_at_k(found: Sequence[Sequence[str]], truth: Sequence[Sequence[str]]) -> float:
    """Share of the true neighbours that were found, over all queries (micro-averaged)."""
    if len(found) != len(truth):
        raise ValueError("recall_at_k needs one found list per true list.")
    total = sum(len(t) for t in truth)
    if total == 0:
        return float("nan")
    return sum(len(set(f) & set(t)) for f, t in zip(found, truth)) / total


def threshold_truth(exact_ids: Sequence[Sequence[str]], exact_sims: np.ndarray,
                    threshold: float) -> list[list[str]]:
    """Per query, the exact top-k ids whose similarity is at least ``threshold``."""
    return [[i for i, s in zip(ids, sims) if s >= threshold] for ids, sims in zip(exact_ids, exact_sims)]


# ----------------------------------------------------------------------------- stores
def ensure_collection(store: VectorStore, chunks: Sequence[Chunk], vectors: np.ndarray,
                      batch_size: int = 1000) -> float | None:
    """Fill ``store`` with exactly these records unless it already holds them (a cached build).

    Returns the seconds the build took, or None when the collection was reused. Either way the
    store is settled (indexes built) before it returns.
    """
    from pymilvus.exceptions import MilvusException

    if store.count() == len(chunks) and _holds(store, chunks, vectors):
        try:
            settle(store)
            return None
        except MilvusException:  # a cached collection whose index is gone: build it again
            pass
    store.reset()
    start = time.perf_counter()
    store.add_documents(chunks, vectors, batch_size=batch_size)
    settle(store)
    return time.perf_counter() - start


def _holds(store: VectorStore, chunks: Sequence[Chunk], vectors: np.ndarray) -> bool:
    """Whether the first and last records are there, at their own vectors (a cheap identity check)."""
    probe = [0, len(chunks) - 1]
    hits = store.search(vectors[probe], k=1)
    return all(h and h[0].id == chunks[i].id and h[0].similarity > 0.999 for h, i in zip(hits, probe))


def settle(store: Any, timeout: float = 300.0) -> None:
    """Wait until a Milvus collection's index covers every row, then reload it (Chroma: nothing).

    Milvus Lite builds segment indexes in a background thread and a server builds them
    asynchronously: timing searches before that measures brute force over unindexed segments.
    A server reports progress in ``describe_index``; Lite builds missing indexes on ``load``.
    """
    if not isinstance(store, MilvusStore):
        return
    client, name = store.client, store.collection
    client.flush(name)
    if store.mode == "server":
        deadline = time.monotonic() + timeout
        while True:
            info = client.describe_index(name, "embedding")
            if info.get("pending_index_rows", 0) == 0 and info.get("indexed_rows", 0) >= info.get("total_rows", 0):
                break
            if time.monotonic() > deadline:
                raise StoreError(f"Milvus at {store.uri} did not finish indexing {name!r} in {timeout:.0f} s: "
                                 "check the server's logs, or give it more time (settle(timeout=...)).")
            time.sleep(0.5)
    client.release_collection(name)
    client.load_collection(name)


# ----------------------------------------------------------------------------- timing
def time_queries(store: Any, queries: np.ndarray, k: int, warmup: int = 10) -> np.ndarray:
    """Seconds each query took when sent alone (``warmup`` untimed queries first)."""
    q = np.asarray(queries, np.float32)
    for i in range(min(warmup, len(q))):
        store.search(q[i:i + 1], k=k)
    out = np.empty(len(q))
    for i in range(len(q)):
        start = time.perf_counter()
        store.search(q[i:i + 1], k=k)
        out[i] = time.perf_counter() - start
    return out


def measure_latency(stores: Mapping[str, Any], queries: np.ndarray, ks: Sequence[int] = (5, 20),
                    warmup: int = 10, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Single-query latency per store and k: a summary (one row per store, k) and every sample."""
    from tqdm import tqdm

    rows, samples = [], []
    for name, store in tqdm(list(stores.items()), desc="latency", disable=not progress):
        for k in ks:
            secs = time_queries(store, queries, k, warmup)
            rows.append({"store": name, "k": k, "mode": "single query", **latency_summary(secs)})
            samples += [{"store": name, "k": k, "ms": s * 1000.0} for s in secs]
        batch = time_batch(store, queries, ks[0])
        rows.append({"store": name, "k": ks[0], "mode": f"one call of {len(queries)}",
                     "median_ms": batch * 1000.0 / len(queries), "p95_ms": np.nan, "p99_ms": np.nan,
                     "mean_ms": batch * 1000.0 / len(queries), "queries": len(queries)})
    return pd.DataFrame(rows), pd.DataFrame(samples)


def time_batch(store: Any, queries: np.ndarray, k: int) -> float:
    """Seconds to answer all ``queries`` in one call (after one warm-up call)."""
    store.search(queries, k=k)
    start = time.perf_counter()
    store.search(queries, k=k)
    return time.perf_counter() - start


def queries_per_second(store: Any, queries: np.ndarray, clients: int, duration: float,
                       k: int = 5) -> float:
    """Single queries per second with ``clients`` threads each sending queries for ``duration`` s."""
    q = np.asarray(queries, np.float32)
    done = [0] * clients
    errors: list[BaseException] = []
    stop = time.perf_counter() + duration

    def client(c: int) -> None:
        i = c
        try:
            while time.perf_counter() < stop:
                store.search(q[i % len(q):i % len(q) + 1], k=k)
                done[c] += 1
                i += clients
        except BaseException as exc:  # surfaced below, in the caller's thread
            errors.append(exc)

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(done) / (time.perf_counter() - start)


def measure_qps(stores: Mapping[str, Any], queries: np.ndarray, clients: Sequence[int] = (1, 2, 4),
                duration: float = 1.0, k: int = 5, progress: bool = True) -> pd.DataFrame:
    """QPS per store (rows) and number of concurrent clients (columns)."""
    from tqdm import tqdm

    table = {}
    for name, store in tqdm(list(stores.items()), desc="QPS", disable=not progress):
        time_queries(store, queries[:10], k, warmup=0)  # warm-up
        table[name] = {c: queries_per_second(store, queries, c, duration, k) for c in clients}
    out = pd.DataFrame(table).T
    out.columns.name = "clients"
    return out


def measure_recall(stores: Mapping[str, Any], vectors: np.ndarray, ids: Sequence[str],
                   queries: np.ndarray, k: int = 5,
                   thresholds: Sequence[float] = THRESHOLDS) -> pd.DataFrame:
    """Recall@k against exact search, overall and among neighbours at ≥ each threshold.

    At threshold t the true set of a query is its exact top-k with similarity ≥ t, and a store
    scores the share of that set it returned in its own top-k. ``queries_with_truth`` says how
    many queries had any such neighbour: with none, recall at t is not measurable (NaN).
    """
    idx, sims = exact_search(vectors, queries, k)
    exact_ids = [[ids[i] for i in row] for row in idx]
    rows = []
    for name, store in stores.items():
        found = [[h.id for h in hits] for hits in store.search(queries, k=k)]
        rows.append({"store": name, "threshold": None, "recall": recall_at_k(found, exact_ids),
                     "queries_with_truth": len(queries)})
        for t in thresholds:
            truth = threshold_truth(exact_ids, sims, t)
            rows.append({"store": name, "threshold": t, "recall": recall_at_k(found, truth),
                         "queries_with_truth": sum(bool(x) for x in truth)})
    return pd.DataFrame(rows)


def measure_inserts(make_store: Mapping[str, Callable[[], Any]], chunks: Sequence[Chunk],
                    vectors: np.ndarray, batch_sizes: Sequence[int] = (10, 100, 1000),
                    progress: bool = True) -> pd.DataFrame:
    """Seconds and rows/s to insert ``chunks`` into a fresh collection, per store and batch size.

    ``make_store[name]()`` returns an empty store; each batch size gets its own fresh one. The
    time includes Milvus's flush (data persisted) but not its asynchronous index build.
    """
    from tqdm import tqdm

    rows = []
    for name, make in tqdm(list(make_store.items()), desc="inserts", disable=not progress):
        for size in batch_sizes:
            store = make()
            try:
                store.reset()
                start = time.perf_counter()
                store.add_documents(chunks, vectors, batch_size=size)
                secs = time.perf_counter() - start
                if store.count() != len(chunks):
                    raise StoreError(f"{name} holds {store.count()} rows after inserting {len(chunks)}.")
            finally:
                if hasattr(store, "close"):
                    store.close()
            rows.append({"store": name, "batch_size": size, "rows": len(chunks), "seconds": secs,
                         "rows_per_s": len(chunks) / secs})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- memory, disk
def folder_bytes(path: str | Path) -> int:
    """Bytes of every file under ``path`` (a file's own size if it is one)."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def server_collection_bytes(data_dir: str | Path, collection_id: int | str) -> int:
    """Bytes a Milvus 2.3 server with local storage keeps for one collection (logs and index files).

    Its storage holds ``insert_log|stats_log|delta_log/<collection>/<partition>/…`` and
    ``index_files/<build>/<version>/<partition>/…``; etcd metadata and the message queue are left out.
    """
    data = Path(data_dir)
    total, partitions = 0, set()
    for kind in ("insert_log", "stats_log", "delta_log"):
        folder = data / kind / str(collection_id)
        if folder.exists():
            partitions |= {p.name for p in folder.iterdir()}
            total += folder_bytes(folder)
    for part in (data / "index_files").glob("*/*/*"):
        if part.name in partitions:
            total += folder_bytes(part)
    return total


def fresh_process_memory(kind: str, location: str | Path, collection: str, queries: np.ndarray,
                         k: int = 5, timeout: float = 300.0) -> dict[str, int]:
    """Resident memory of a fresh Python process that opens the collection and answers ``queries``.

    Chroma and Milvus Lite run inside their caller's process, so their memory is that process's
    growth: the child records its RSS after importing the client (``baseline``), opens the
    collection, answers every query, and records its RSS again (``rss``) and its peak. ``store`` is
    ``rss - baseline``. A Milvus Lite file must not be open in this process meanwhile (its lock).
    """
    import tempfile

    if kind not in ("chroma", "lite"):
        raise ValueError("fresh_process_memory measures 'chroma' or 'lite'; a server's memory is "
                         "its own process's RSS (helpers.server: server.rss_bytes()).")
    with tempfile.TemporaryDirectory() as tmp:
        qfile = Path(tmp) / "queries.npy"
        np.save(qfile, np.asarray(queries, np.float32))
        cmd = [sys.executable, "-m", "helpers.bench", "memory", "--kind", kind, "--location",
               str(location), "--collection", collection, "--queries", str(qfile), "--k", str(k)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                                            os.environ.get("PYTHONPATH", "")])}
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise StoreError(f"Measuring {kind} memory in a fresh process failed ({last}): is the "
                         f"collection {collection!r} at {location}, and no other process holding it?")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["store"] = result["rss"] - result["baseline"]
    return result


def _memory_child(kind: str, location: str, collection: str, queries_file: str, k: int) -> dict[str, int]:
    import resource

    import psutil

    if kind == "chroma":
        import chromadb  # noqa: F401  (imported before the baseline, like an application would)
    else:
        import milvus_lite  # noqa: F401
        import pymilvus  # noqa: F401
    queries = np.load(queries_file)
    proc = psutil.Process()
    baseline = proc.memory_info().rss
    store = (ChromaStore(location, collection, create=False) if kind == "chroma"
             else MilvusStore(location, collection, create=False))
    for i in range(len(queries)):
        store.search(queries[i:i + 1], k=k)
    rss = proc.memory_info().rss
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    if kind == "lite":
        store.close()
    return {"baseline": baseline, "rss": rss, "peak": peak}


# ----------------------------------------------------------------------------- reporting
def with_ratios(df: pd.DataFrame, baseline: str, columns: Sequence[str], store_col: str = "store",
                by: Sequence[str] = ()) -> pd.DataFrame:
    """Add ``<column> ÷ <baseline>`` beside each column: the row's value over the baseline store's
    value in the same ``by`` group (e.g. the same k)."""
    keys = list(by)
    base = df[df[store_col] == baseline]
    if base.empty:
        raise ValueError(f"with_ratios: no row for the baseline store {baseline!r}.")
    if keys:
        ref = df[keys].merge(base[keys + list(columns)], on=keys, how="left")
    else:
        ref = pd.DataFrame({c: [base[c].iloc[0]] * len(df) for c in columns})
    out = df.copy()
    for col in columns:
        out[f"{col} ÷ {baseline}"] = out[col].to_numpy(dtype=float) / ref[col].to_numpy(dtype=float)
    return out


def verdict(measured_ratio: float, claimed_ratio: float, tolerance: float = 0.1) -> str:
    """Compare a measured Milvus/Chroma ratio with the guide's claimed one.

    "confirmed" when both point the same way (both below or both above 1 by more than
    ``tolerance``), "refuted" when they point opposite ways or the measurement shows no
    difference where the guide claims one, "not measurable here" when the measurement is missing.
    """
    if measured_ratio is None or not np.isfinite(measured_ratio):
        return "not measurable here"
    def side(r: float) -> int:
        return 0 if abs(r - 1) <= tolerance else (1 if r > 1 else -1)
    claimed, measured = side(claimed_ratio), side(measured_ratio)
    if measured == claimed:
        return "confirmed"
    if measured == 0:
        return f"refuted: no clear difference (within {tolerance:.0%})"
    return "refuted: the opposite way"


def main(argv: list[str] | None = None) -> int:
    """``memory``: measure one store's memory in this (fresh) process and print it as JSON."""
    parser = argparse.ArgumentParser(prog="python -m helpers.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("memory",))
    parser.add_argument("--kind", choices=("chroma", "lite"), required=True)
    parser.add_argument("--location", required=True, help="Chroma folder or Milvus Lite .db file")
    parser.add_argument("--collection", required=True)
    parser.add_argument("--queries", required=True, help=".npy file of query vectors")
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args(argv)
    print(json.dumps(_memory_child(args.kind, args.location, args.collection, args.queries, args.k)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
