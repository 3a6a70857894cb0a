"""Chroma (before) and Milvus (after) behind one small interface.

The guide's point is that the application's API stays the same while the store changes:
``add_documents``, ``search``, ``delete_document`` and ``count`` mean the same thing on
both. Both stores are configured alike (cosine space, HNSW with M=16, ef_construction=100,
ef=100: Chroma's defaults), so any difference in results comes from the engines.

Scores: Chroma reports cosine *distance* (1 − cos, lower is closer); Milvus COSINE reports
*similarity* (cos, higher is closer). Every ``Hit`` keeps the store's raw number and a
``similarity`` that means the same in both.
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import numpy as np

from . import config
from .corpus import Chunk
from .errors import DataError, StoreError

HNSW_M = 16
HNSW_EF_CONSTRUCTION = 100
HNSW_EF = 100
MAX_VARCHAR_BYTES = 65_535  # Milvus's limit for one VARCHAR value
CHROMA_MAX_BATCH = 5_000  # Chroma refuses batches over ~5,461 records (SQLite variables)


@dataclass(frozen=True)
class Hit:
    """One search result: the chunk, the store's raw score and a comparable similarity."""

    id: str
    similarity: float
    raw: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def doc_id(self) -> str:
        """The document this chunk belongs to."""
        return str(self.metadata.get("doc_id", ""))


class VectorStore(Protocol):
    """What the application needs from a vector store, whichever store it is."""

    name: str

    def add_documents(self, chunks: Sequence[Chunk], embeddings: np.ndarray,
                      batch_size: int = 1000) -> int:
        """Store chunks with their embeddings; return how many were written."""

    def search(self, query_embeddings: np.ndarray, k: int = 5,
               threshold: float | None = None) -> list[list[Hit]]:
        """Top-``k`` hits per query, keeping those with similarity ≥ ``threshold``."""

    def delete_document(self, doc_id: str) -> int:
        """Delete every chunk of a document; return how many were deleted."""

    def count(self) -> int:
        """How many chunks the store holds."""


def milvus_string(text: str) -> str:
    """``text`` as a string literal for a Milvus filter expression, escaped (non-ASCII kept)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


def check_vectors(embeddings: np.ndarray, dim: int, n: int | None = None) -> np.ndarray:
    """Return ``embeddings`` as float32 (n, dim), or raise DataError saying what is wrong."""
    arr = np.asarray(embeddings, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        got = arr.shape[-1] if arr.ndim >= 1 else 0
        raise DataError(f"The vectors have {got} dimensions but the collection expects {dim}: "
                        "embed with the same model as the collection (all-MiniLM-L6-v2, 384).")
    if n is not None and arr.shape[0] != n:
        raise DataError(f"Got {arr.shape[0]} vectors for {n} chunks: pass one vector per chunk.")
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        raise DataError(f"Vectors at rows {bad[:5].tolist()} contain NaN or infinity: "
                        "re-embed those texts or drop them before inserting.")
    return arr


def _check_text(chunks: Sequence[Chunk]) -> None:
    for c in chunks:
        size = len(c.text.encode("utf-8"))
        if size > MAX_VARCHAR_BYTES:
            raise DataError(f"Chunk {c.id!r} is {size:,} bytes, over Milvus's VARCHAR limit of "
                            f"{MAX_VARCHAR_BYTES:,}: chunk the document smaller (size=800).")


# ------------------------------------------------------------------------------- Chroma
class ChromaStore:
    """The "before": a Chroma collection in a persistent client on disk."""

    name = "Chroma"

    def __init__(self, path: str | Path | None = None, collection: str = config.KB_COLLECTION,
                 dim: int = 384, create: bool = True) -> None:
        import chromadb

        self.path = config.chroma_path(path)
        self.dim = dim
        if not create and not self.path.exists():
            raise StoreError(f"There is no Chroma database at {self.path}: build the knowledge "
                             "base first (notebook 00) or set CHROMA_PATH to the right folder.")
        self.client = chromadb.PersistentClient(path=str(self.path))
        if create:
            # No embedding function: vectors always come from helpers.embed, so Chroma never
            # reaches for its default model (which downloads and fails offline).
            self.collection = self.client.get_or_create_collection(
                collection, embedding_function=None,
                configuration={"hnsw": {"space": "cosine", "max_neighbors": HNSW_M,
                                        "ef_construction": HNSW_EF_CONSTRUCTION,
                                        "ef_search": HNSW_EF}})
        else:
            names = [c.name for c in self.client.list_collections()]
            if collection not in names:
                raise StoreError(f"Chroma at {self.path} has no collection {collection!r} "
                                 f"(it has {names or 'none'}): build it first (notebook 00).")
            self.collection = self.client.get_collection(collection, embedding_function=None)

    def add_documents(self, chunks: Sequence[Chunk], embeddings: np.ndarray,
                      batch_size: int = 1000) -> int:
        """Add chunks in batches (Chroma caps one batch at ~5,461 records)."""
        vecs = check_vectors(embeddings, self.dim, len(chunks))
        size = min(batch_size, CHROMA_MAX_BATCH)
        for i in range(0, len(chunks), size):
            part = chunks[i:i + size]
            self.collection.upsert(ids=[c.id for c in part], embeddings=vecs[i:i + size],
                                   documents=[c.text for c in part],
                                   metadatas=[c.metadata() for c in part])
        return len(chunks)

    def search(self, query_embeddings: np.ndarray, k: int = 5,
               threshold: float | None = None) -> list[list[Hit]]:
        """Top-k by cosine; Chroma's distance d becomes similarity 1 − d."""
        q = check_vectors(query_embeddings, self.dim)
        res = self.collection.query(query_embeddings=q, n_results=k,
                                    include=["documents", "metadatas", "distances"])
        out = []
        for ids, docs, metas, dists in zip(res["ids"], res["documents"], res["metadatas"],
                                           res["distances"]):
            hits = [Hit(i, 1.0 - float(d), float(d), doc or "", dict(m or {}))
                    for i, doc, m, d in zip(ids, docs, metas, dists)]
            out.append([h for h in hits if threshold is None or h.similarity >= threshold])
        return out

    def delete_document(self, doc_id: str) -> int:
        """Delete the document's chunks (a metadata filter on doc_id)."""
        ids = self.collection.get(where={"doc_id": doc_id}, include=[])["ids"]
        if ids:
            self.collection.delete(ids=ids)
        return len(ids)

    def count(self) -> int:
        """Records in the collection."""
        return self.collection.count()

    def reset(self) -> None:
        """Drop and recreate the collection, empty."""
        name, config_ = self.collection.name, self.collection.configuration
        self.client.delete_collection(name)
        self.collection = self.client.create_collection(
            name, embedding_function=None, configuration={"hnsw": config_["hnsw"]})


# ------------------------------------------------------------------------------- Milvus
def connect_milvus(uri: str | None = None, timeout: float = 10.0):  # -> pymilvus.MilvusClient
    """A ``MilvusClient`` for ``uri`` (default: ``$MILVUS_URI`` or the Lite file), with clear errors."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    uri = config.milvus_uri(uri)
    if config.is_lite(uri):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    try:
        return MilvusClient(uri=uri, timeout=timeout)
    except MilvusException as exc:
        if config.is_lite(uri):
            raise StoreError(f"Milvus Lite could not open {uri} ({exc.message}): another process "
                             "(a notebook kernel?) may hold it; shut that kernel down or use "
                             "another file.") from None
        raise StoreError(f"Cannot reach a Milvus server at {uri}: start one (`make milvus-local` "
                         "or `make milvus-up`) or unset MILVUS_URI to use the embedded "
                         "Milvus Lite file.") from None


# Open MilvusStores per Lite file in this process: the embedded engine is stopped (and its
# file lock released) when the last one closes.
_LITE_USERS: Counter[str] = Counter()


def _release_lite(uri: str) -> None:
    """One user of a Lite file is done; stop the engine (and free the file) after the last."""
    _LITE_USERS[uri] -= 1
    if _LITE_USERS[uri] == 0:
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(uri)


@contextmanager
def milvus_client(uri: str | None = None) -> Iterator[Any]:
    """A ``MilvusClient`` for a ``with`` block: closed on exit, a Lite file released after its last user."""
    uri = config.milvus_uri(uri)
    client = connect_milvus(uri)
    lite = config.is_lite(uri)
    if lite:
        _LITE_USERS[uri] += 1
    try:
        yield client
    finally:
        client.close()
        if lite:
            _release_lite(uri)


def milvus_mode(uri: str) -> str:
    """"lite" for a Milvus Lite file, "server" for anything reached over the network."""
    return "lite" if config.is_lite(uri) else "server"


class MilvusStore:
    """The "after": a Milvus collection (Lite file or server) with a typed schema."""

    name = "Milvus"

    def __init__(self, uri: str | None = None, collection: str = config.KB_COLLECTION,
                 dim: int = 384, create: bool = True, client: Any = None) -> None:
        self.uri = config.milvus_uri(uri)
        self.mode = milvus_mode(self.uri)
        self.client = client or connect_milvus(self.uri)
        if self.mode == "lite":
            _LITE_USERS[self.uri] += 1
        self.collection = collection
        self.dim = dim
        if not self.client.has_collection(collection):
            if not create:
                raise StoreError(f"Milvus at {self.uri} has no collection {collection!r}: build "
                                 "the knowledge base first (notebook 00) or check the name.")
            self._create()
        self.client.load_collection(collection)  # a reopened collection starts released

    def _create(self) -> None:
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR_BYTES)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=512)
        schema.add_field("position", DataType.INT64)
        schema.add_field("section", DataType.VARCHAR, max_length=2048)
        index = self.client.prepare_index_params()
        index.add_index("embedding", index_type="HNSW", metric_type="COSINE",
                        params={"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION})
        self.client.create_collection(self.collection, schema=schema, index_params=index,
                                      consistency_level="Strong")

    def add_documents(self, chunks: Sequence[Chunk], embeddings: np.ndarray,
                      batch_size: int = 1000, flush: bool = True) -> int:
        """Upsert chunks in batches, then flush (unless ``flush=False``) so the HNSW index covers them."""
        vecs = check_vectors(embeddings, self.dim, len(chunks))
        _check_text(chunks)
        for i in range(0, len(chunks), batch_size):
            rows = [{"id": c.id, "embedding": v.tolist(), "text": c.text, "doc_id": c.doc_id,
                     "position": c.position, "section": c.section[:500]}
                    for c, v in zip(chunks[i:i + batch_size], vecs[i:i + batch_size])]
            # upsert, not insert: a server keeps duplicate primary keys on insert.
            self.client.upsert(self.collection, rows)
        if flush:
            self.client.flush(self.collection)
        return len(chunks)

    def search(self, query_embeddings: np.ndarray, k: int = 5,
               threshold: float | None = None) -> list[list[Hit]]:
        """Top-k by cosine similarity (Milvus reports similarity directly)."""
        q = check_vectors(query_embeddings, self.dim)
        res = self.client.search(self.collection, data=q.tolist(), limit=k, anns_field="embedding",
                                 search_params={"metric_type": "COSINE",
                                                "params": {"ef": max(HNSW_EF, k)}},
                                 output_fields=["text", "doc_id", "position", "section"])
        out = []
        for hits in res:
            row = []
            for h in hits:
                ent = h["entity"]
                sim = float(h["distance"])
                if threshold is None or sim >= threshold:
                    meta = {"doc_id": ent["doc_id"], "position": ent["position"],
                            "section": ent["section"]}
                    row.append(Hit(str(h["id"]), sim, sim, ent["text"], meta))
            out.append(row)
        return out

    def delete_document(self, doc_id: str) -> int:
        """Delete the document's chunks (a boolean expression on doc_id)."""
        before = self.count()
        self.client.delete(self.collection, filter=f"doc_id == {milvus_string(doc_id)}")
        return before - self.count()

    def count(self) -> int:
        """Live entities (count(*) with strong consistency: deletes are reflected)."""
        res = self.client.query(self.collection, filter="", output_fields=["count(*)"],
                                consistency_level="Strong")
        return int(res[0]["count(*)"])

    def reset(self) -> None:
        """Drop and recreate the collection, empty."""
        self.client.drop_collection(self.collection)
        self._create()
        self.client.load_collection(self.collection)

    def close(self) -> None:
        """Close the client; for Lite, also stop this process's engine for the file.

        Milvus Lite runs inside the process and holds a lock on its folder until stopped, so
        another process (the health CLI, another notebook) can open it only after this.
        """
        if self.client is None:
            return
        self.client.close()
        self.client = None
        if self.mode == "lite":
            _release_lite(self.uri)

