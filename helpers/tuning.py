"""Performance tuning, measured: the collection the tuning chapter works on and the few timings
``helpers.bench`` and ``helpers.indexes`` do not already take.

The tuning collection holds the knowledge base's vectors with the fields a RAG service filters
and returns: ``text``, ``position`` (a chunk's place in its document; 0–49 for synthetic rows, so
``position < p`` selects a known share of them) and ``tenant`` (16 tenants by a stable hash of the
document id), which can be the collection's partition key.
"""

from __future__ import annotations

import time
import zlib
from typing import Any, Callable, Sequence

import numpy as np

from .corpus import Chunk
from .indexes import FIELD, METRIC, IndexKind, wait_for_index
from .stores import MAX_VARCHAR_BYTES

TENANTS = 16


def tenant_of(doc_id: str) -> int:
    """The tenant (0–15) a document belongs to: a stable hash, the same in every run."""
    return zlib.crc32(doc_id.encode("utf-8")) % TENANTS


def tuning_collection(client: Any, name: str, chunks: Sequence[Chunk], vectors: np.ndarray,
                      index: IndexKind, partition_key: bool = True, flush: bool = True,
                      batch_size: int = 2000, consistency_level: str = "Bounded", load: bool = True) -> float:
    """(Re)create ``name`` with ``index`` declared, insert the chunks (ids = row numbers), load it
    (unless ``load=False``).

    With ``flush=False`` the rows stay in growing segments, which no index covers yet.
    Returns the seconds the inserts (and the flush) took, in ``batch_size`` rows per call.
    """
    from pymilvus import DataType

    if client.has_collection(name):
        client.drop_collection(name)
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field(FIELD, DataType.FLOAT_VECTOR, dim=vectors.shape[1])
    schema.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR_BYTES)
    schema.add_field("position", DataType.INT64)
    schema.add_field("tenant", DataType.INT64, is_partition_key=partition_key)
    params = client.prepare_index_params()
    params.add_index(FIELD, index_type=index.index_type, metric_type=METRIC, params=index.build)
    extra = {"num_partitions": TENANTS} if partition_key else {}
    client.create_collection(name, schema=schema, index_params=params,
                             consistency_level=consistency_level, **extra)
    as_lists = np.asarray(vectors, np.float32).tolist()
    start = time.perf_counter()
    for i in range(0, len(chunks), batch_size):
        client.insert(name, [{"id": j, FIELD: as_lists[j], "text": chunks[j].text[:2000],
                              "position": chunks[j].position, "tenant": tenant_of(chunks[j].doc_id)}
                             for j in range(i, min(i + batch_size, len(chunks)))])
    if flush:
        client.flush(name)
    seconds = time.perf_counter() - start
    if load:
        client.load_collection(name)
    return seconds


def seal(client: Any, name: str, timeout: float = 120.0) -> float:
    """Flush growing segments, wait until the index covers them, reload; return the seconds."""
    start = time.perf_counter()
    client.flush(name)
    state, _ = wait_for_index(client, name, timeout)
    if state != "Finished":
        from .errors import StoreError

        raise StoreError(f"The index of {name!r} is still {state} after {timeout:.0f} s: give it more time.")
    client.release_collection(name)
    for attempt in range(3):
        try:
            client.load_collection(name)
            break
        except Exception:  # Lite: its background thread may still be writing a segment's index file
            if attempt == 2:
                raise
            time.sleep(1.0)
    return time.perf_counter() - start


def add_scalar_index(client: Any, name: str, field: str, types: Sequence[str] = ("INVERTED", "STL_SORT")) -> str:
    """Index a scalar field with the first index type this Milvus accepts; return its name.

    Milvus Lite implements INVERTED only; the 2.3.5 server sorts numbers (STL_SORT).
    """
    from .errors import StoreError
    from .indexes import _quiet

    client.release_collection(name)
    errors = []
    for index_type in types:
        params = client.prepare_index_params()
        params.add_index(field, index_type=index_type, index_name=f"{field}_idx")
        try:
            with _quiet():
                client.create_index(name, params)
            client.load_collection(name)
            return index_type
        except Exception as exc:  # refused: try the next type
            errors.append(f"{index_type}: {getattr(exc, 'message', exc)}")
    client.load_collection(name)
    raise StoreError(f"No scalar index type was accepted for {field!r} ({'; '.join(errors)}).")


def best_seconds(call: Callable[[], Any], repeats: int = 3) -> float:
    """The fastest of ``repeats`` timed calls, after one untimed warm-up call."""
    call()
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return float(best)


def scale_point(client: Any, name: str, queries: np.ndarray, search_params: dict[str, Any],
                single: int = 30) -> dict[str, float]:
    """One point of a scaling curve: single-query median ms (``single`` queries), batched QPS
    (all queries in one call) and the median ms of a row count (``get_collection_stats``)."""
    from .bench import latency_summary, time_queries
    from .indexes import call_cost

    searcher = Searcher(client, name, search_params)
    return {"single-query median ms": latency_summary(time_queries(searcher, queries[:single], 10, warmup=3))["median_ms"],
            "batched QPS": len(queries) / best_seconds(lambda: searcher.search(queries, 10), 2),
            "row count ms": call_cost(client, name, queries[0], search_params, calls=5)["get_collection_stats"]}


class Searcher:
    """A collection searched with fixed parameters, in the shape ``helpers.bench`` times
    (``search(queries, k)``), so its latency and concurrency functions apply to any index setting."""

    name = "Milvus"

    def __init__(self, client: Any, collection: str, search_params: dict[str, Any],
                 output_fields: Sequence[str] = (), filter: str = "") -> None:
        self.client, self.collection = client, collection
        self.search_params, self.output_fields, self.filter = search_params, list(output_fields), filter

    def search(self, query_embeddings: np.ndarray, k: int = 10) -> list[list[dict]]:
        """Raw hits of one call for all the queries given."""
        q = np.atleast_2d(np.asarray(query_embeddings, np.float32)).tolist()
        return self.client.search(self.collection, data=q, limit=k, anns_field=FIELD,
                                  search_params=self.search_params, output_fields=self.output_fields,
                                  filter=self.filter)
