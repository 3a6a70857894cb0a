"""Schema design: read what a Chroma collection really holds, then propose a typed Milvus schema.

Chroma keeps ``ids, embeddings, documents, metadatas`` with free-form metadata: any key, on
some records and not others, a string here and a number there, lists. Milvus wants the
fields declared up front, with types and VARCHAR lengths, and refuses a row that does not
fit: at insert time, in the middle of a migration. This module moves that failure to the
start:

1. ``inspect_collection`` scans the collection in pages (``get(limit, offset)``: Chroma fails
   past ~32k rows in one call) and reports per metadata key the types seen, the share of
   records having it, the longest string in bytes, list lengths and cardinality.
2. ``propose`` turns that report into a ``SchemaProposal``: a real pymilvus
   ``CollectionSchema`` plus index params, with a reason for every choice and a note for every
   fallback (a key that is not a valid field name, mixed int/float values, a string over the
   VARCHAR limit, a key missing where the target has no nullable fields: all go to one JSON
   field instead of failing during insert).
3. ``SchemaProposal.to_row`` / ``from_row`` turn a Chroma record into a row of that schema
   and back, losslessly; ``save`` / ``load`` keep the proposal in a JSON file that the
   migration CLI takes with ``--schema FILE``.

Targets differ (measured by the kit, see ``TARGETS``): Milvus Lite 3.2 has nullable fields
and only the INVERTED scalar index; the kit's Milvus 2.3.5 server has no nullable fields and
indexes VARCHAR with Trie and numbers with STL_SORT.

Multi-tenancy uses a partition-key field (``propose(..., partition_key="tenant")``) and
``search(..., tenant=...)``, which filters on it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .corpus import Chunk
from .errors import ConfigError, DataError, StoreError
from .stores import (CHROMA_MAX_BATCH, HNSW_EF, HNSW_EF_CONSTRUCTION, HNSW_M, MAX_VARCHAR_BYTES,
                     Hit, check_vectors, milvus_string)

PAGE_SIZE = 1_000  # rows per Chroma get(): well under SQLite's ~32k-variable limit
CARDINALITY_CAP = 10_000  # distinct values counted per key before we stop counting
MAX_FIELD_NAME = 255
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Fixed fields of every proposed schema; a metadata key with one of these names goes to JSON.
PK_FIELD, ID_FIELD, VECTOR_FIELD, DOCUMENT_FIELD, JSON_FIELD = "pk", "id", "embedding", "document", "metadata"
RESERVED = {PK_FIELD, ID_FIELD, VECTOR_FIELD, DOCUMENT_FIELD, JSON_FIELD}
METRICS = {"cosine": "COSINE", "l2": "L2", "ip": "IP"}
SCHEMA_VERSION = 1


# ------------------------------------------------------------------------------ targets
@dataclass(frozen=True)
class Target:
    """What a Milvus deployment accepts, as measured by the kit."""

    name: str
    nullable: bool
    scalar_index: dict[str, str]  # field type → the scalar index type it accepts
    json_max_bytes: int | None  # the largest JSON value it stores (None: no limit seen)
    about: str


TARGETS: dict[str, Target] = {
    "lite": Target("lite", nullable=True,
                   scalar_index={"VARCHAR": "INVERTED", "INT64": "INVERTED", "DOUBLE": "INVERTED",
                                 "BOOL": "INVERTED"},
                   json_max_bytes=None,
                   about="Milvus Lite 3.2: nullable fields; INVERTED is its only scalar index "
                         "(STL_SORT, TRIE, BITMAP: 'not implemented')."),
    "server": Target("server", nullable=False,
                     scalar_index={"VARCHAR": "Trie", "INT64": "STL_SORT", "DOUBLE": "STL_SORT"},
                     json_max_bytes=65_536,
                     about="Milvus server 2.3.5: no nullable fields; VARCHAR takes only a Trie "
                           "index, numbers only STL_SORT (INVERTED arrived in 2.4); a JSON value "
                           "holds at most 65,536 bytes."),
}


def target_for(uri: str) -> str:
    """The target name ("lite" or "server") for a Milvus URI."""
    from .stores import milvus_mode

    return milvus_mode(uri)


def _target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ConfigError(f"Unknown Milvus target {name!r}: use one of {', '.join(TARGETS)}.") from None


# ------------------------------------------------------------------------------ records
@dataclass
class Record:
    """One Chroma record, as exported: the id, a float32 vector, the document and metadata."""

    id: str
    embedding: np.ndarray
    document: str | None = None
    metadata: dict[str, Any] | None = None

    def same_as(self, other: "Record") -> bool:
        """Equal id, document and metadata (types included: 3 ≠ 3.0) and bit-identical vector."""
        return (self.id == other.id and self.document == other.document
                and _typed(self.metadata) == _typed(other.metadata)
                and np.array_equal(np.asarray(self.embedding, np.float32),
                                   np.asarray(other.embedding, np.float32)))


def _typed(value: Any) -> Any:
    """A value with every scalar paired with its type, so 3 and 3.0 and True compare unequal."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


def scan(collection: Any, page_size: int = PAGE_SIZE, progress: bool = False) -> Iterator[list[Record]]:
    """Every record of a Chroma collection, one page at a time, vectors cast to float32."""
    if not 1 <= page_size <= CHROMA_MAX_BATCH:
        raise ConfigError(f"page_size {page_size} is out of range: use 1 to {CHROMA_MAX_BATCH} "
                          "(Chroma fails on reads past ~32k SQL variables).")
    total = collection.count()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"scan {collection.name}", unit="rec")
    for offset in range(0, total, page_size):
        res = collection.get(include=["embeddings", "documents", "metadatas"], limit=page_size,
                             offset=offset)
        vectors = np.asarray(res["embeddings"], dtype=np.float32)  # Chroma returns float64
        page = [Record(i, vectors[j], d, dict(m) if m else None)
                for j, (i, d, m) in enumerate(zip(res["ids"], res["documents"], res["metadatas"]))]
        if bar is not None:
            bar.update(len(page))
        yield page
    if bar is not None:
        bar.close()


def chroma_space(collection: Any) -> str:
    """The collection's distance space ("cosine", "l2" or "ip"), from its configuration."""
    conf = getattr(collection, "configuration", None) or {}
    space = (conf.get("hnsw") or {}).get("space") or (collection.metadata or {}).get("hnsw:space")
    return str(space or "l2")  # Chroma's default space is l2


# ----------------------------------------------------------------------------- inspection
def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        inner = sorted({_kind(v) for v in value})
        return f"list[{'|'.join(inner)}]"
    return type(value).__name__


def _bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, list):
        return max((_bytes(v) for v in value), default=0)
    return 0


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else (type(value).__name__, value)


@dataclass
class KeyStats:
    """What one metadata key holds across the collection."""

    key: str
    present: int = 0
    types: Counter = field(default_factory=Counter)
    max_bytes: int = 0
    list_min: int | None = None
    list_max: int | None = None
    distinct: set = field(default_factory=set, repr=False)
    distinct_capped: bool = False

    def add(self, value: Any) -> None:
        """Count one value of this key."""
        self.present += 1
        self.types[_kind(value)] += 1
        self.max_bytes = max(self.max_bytes, _bytes(value))
        if isinstance(value, list):
            n = len(value)
            self.list_min = n if self.list_min is None else min(self.list_min, n)
            self.list_max = n if self.list_max is None else max(self.list_max, n)
        if len(self.distinct) < CARDINALITY_CAP:
            self.distinct.add(_hashable(value))
        else:
            self.distinct_capped = True

    @property
    def cardinality(self) -> int:
        """Distinct values seen (a lower bound when ``distinct_capped``)."""
        return len(self.distinct)

    @property
    def valid_name(self) -> bool:
        """Whether the key can be a Milvus field name (letters, digits, _; not a digit first)."""
        return bool(FIELD_NAME.match(self.key)) and len(self.key) <= MAX_FIELD_NAME


@dataclass
class Inspection:
    """What a Chroma collection holds: counts, vector shape and space, and per-key statistics."""

    collection: str
    count: int
    dim: int
    space: str
    id_max_bytes: int
    ids_numeric: bool  # every id is a decimal integer that fits INT64
    id_hash_collisions: int  # ids whose 64-bit hash another id already had
    document_max_bytes: int
    documents_none: int
    documents_empty: int
    metadata_none: int
    keys: dict[str, KeyStats]

    def table(self) -> "Any":
        """The per-key report as a pandas DataFrame, most frequent key first."""
        import pandas as pd

        rows = [{"key": s.key,
                 "types": ", ".join(f"{t} ×{n}" for t, n in sorted(s.types.items())),
                 "share": round(s.present / self.count, 3) if self.count else 0.0,
                 "max bytes": s.max_bytes or None,
                 "list length": (f"{s.list_min}–{s.list_max}" if s.list_max is not None else None),
                 "cardinality": f"≥{s.cardinality}" if s.distinct_capped else s.cardinality,
                 "valid field name": s.valid_name}
                for s in sorted(self.keys.values(), key=lambda s: (-s.present, s.key))]
        return pd.DataFrame(rows).set_index("key")

    def summary(self) -> dict[str, Any]:
        """The collection-level figures (records, dimension, space, ids, documents)."""
        return {"records": self.count, "dimension": self.dim, "space": self.space,
                "longest id (bytes)": self.id_max_bytes, "ids all integers": self.ids_numeric,
                "longest document (bytes)": self.document_max_bytes,
                "documents missing": self.documents_none, "records without metadata": self.metadata_none,
                "metadata keys": len(self.keys)}


_INT_ID = re.compile(r"^-?[0-9]{1,19}$")


def _fits_int64(text: str) -> bool:
    return bool(_INT_ID.match(text)) and -2**63 <= int(text) < 2**63 and str(int(text)) == text


def hash_id(chroma_id: str) -> int:
    """A stable signed 64-bit integer for a string id (BLAKE2b): the INT64 primary key option."""
    return int.from_bytes(hashlib.blake2b(chroma_id.encode("utf-8"), digest_size=8).digest(),
                          "big", signed=True)


def inspect_records(pages: Iterable[Sequence[Record]], collection: str = "", space: str = "l2") -> Inspection:
    """Statistics over records given page by page (see ``inspect_collection``)."""
    keys: dict[str, KeyStats] = {}
    hashes: set[int] = set()
    count = dim = id_max = doc_max = docs_none = docs_empty = meta_none = collisions = 0
    numeric = True
    for page in pages:
        for r in page:
            count += 1
            dim = dim or len(r.embedding)
            if len(r.embedding) != dim:
                raise DataError(f"Record {r.id!r} has {len(r.embedding)} dimensions, others {dim}: "
                                "one collection must hold one embedding model's vectors.")
            id_max = max(id_max, len(r.id.encode("utf-8")))
            numeric = numeric and _fits_int64(r.id)
            h = hash_id(r.id)
            collisions += h in hashes
            hashes.add(h)
            if r.document is None:
                docs_none += 1
            else:
                docs_empty += r.document == ""
                doc_max = max(doc_max, len(r.document.encode("utf-8")))
            if not r.metadata:
                meta_none += 1
                continue
            for k, v in r.metadata.items():
                keys.setdefault(k, KeyStats(k)).add(v)
    if count == 0:
        raise DataError(f"The Chroma collection {collection!r} is empty: there is nothing to infer "
                        "a schema (or even a vector dimension) from; add records first.")
    return Inspection(collection, count, dim, space, id_max, numeric, collisions, doc_max,
                      docs_none, docs_empty, meta_none, keys)


def inspect_collection(collection: Any, page_size: int = PAGE_SIZE, progress: bool = False) -> Inspection:
    """Scan a Chroma collection in pages and report what it holds."""
    return inspect_records(scan(collection, page_size, progress), collection.name, chroma_space(collection))


# -------------------------------------------------------------------------------- proposal
def varchar_length(max_bytes: int, headroom: float = 2.0, floor: int = 64) -> int:
    """A VARCHAR max_length with headroom: the next power of two ≥ headroom × longest, ≤ 65,535."""
    want = max(floor, int(max_bytes * headroom))
    return min(MAX_VARCHAR_BYTES, 1 << (want - 1).bit_length())


@dataclass
class FieldPlan:
    """Where one Chroma metadata key goes: a typed field, or the JSON field (``dtype="JSON"``)."""

    key: str
    dtype: str  # VARCHAR, INT64, DOUBLE, BOOL, ARRAY, or JSON (= a key inside the JSON field)
    reason: str
    nullable: bool = False
    max_length: int | None = None
    element_type: str | None = None
    max_capacity: int | None = None
    partition_key: bool = False

    @property
    def typed(self) -> bool:
        """Whether the key has its own Milvus field."""
        return self.dtype != "JSON"


_SCALAR = {"str": "VARCHAR", "int": "INT64", "float": "DOUBLE", "bool": "BOOL"}


def _plan_key(s: KeyStats, count: int, target: Target, min_share: float, headroom: float) -> tuple[FieldPlan, str | None]:
    """The plan for one key and, for a fallback to JSON, the note that says why."""
    share = s.present / count

    def to_json(why: str) -> tuple[FieldPlan, str]:
        return FieldPlan(s.key, "JSON", why), f"'{s.key}' → JSON field: {why}"

    if not s.valid_name:
        return to_json("not a valid Milvus field name (letters, digits and _ only, not starting "
                       "with a digit); kept under its own name in the JSON field")
    if s.key in RESERVED:
        return to_json(f"its name is one of the schema's own fields ({', '.join(sorted(RESERVED))})")
    if len(s.types) > 1:
        seen = " and ".join(sorted(s.types))
        extra = " (a DOUBLE field would give 3 back as 3.0)" if set(s.types) == {"int", "float"} else ""
        return to_json(f"its values are {seen}: no single Milvus type holds them losslessly{extra}")
    if s.max_bytes > MAX_VARCHAR_BYTES:
        why = f"a value of {s.max_bytes:,} bytes is over the VARCHAR limit of {MAX_VARCHAR_BYTES:,}"
        if target.json_max_bytes and s.max_bytes > target.json_max_bytes:
            why += (f", and over the {target.name}'s JSON limit of {target.json_max_bytes:,} too: "
                    "to_row refuses such records; shorten the value in Chroma first")
        return to_json(why)
    if share < min_share:
        return to_json(f"rare: on {share:.0%} of records (< min_share {min_share:.0%})")
    missing = s.present < count
    if missing and not target.nullable:
        return to_json(f"missing on {count - s.present} of {count} records and the {target.name} "
                       "target has no nullable fields (a default value would invent data)")
    (kind,) = s.types
    why_null = f"; nullable: missing on {count - s.present} records" if missing else ""
    if kind in _SCALAR:
        dtype = _SCALAR[kind]
        length = varchar_length(s.max_bytes, headroom) if dtype == "VARCHAR" else None
        why = {"VARCHAR": f"always text, longest {s.max_bytes} bytes → max_length {length}",
               "INT64": "always an integer", "DOUBLE": "always a float",
               "BOOL": "always true/false"}[dtype]
        return FieldPlan(s.key, dtype, why + why_null, nullable=missing, max_length=length), None
    inner = kind[5:-1]
    if inner not in _SCALAR or s.list_max is None:
        return to_json(f"lists of {inner}: no single ARRAY element type")
    element = _SCALAR[inner]
    capacity = min(4096, max(4, int(s.list_max * headroom)))
    length = varchar_length(s.max_bytes, headroom) if element == "VARCHAR" else None
    return FieldPlan(s.key, "ARRAY", f"lists of {inner}, up to {s.list_max} long → capacity {capacity}"
                     + why_null, nullable=missing, element_type=element, max_capacity=capacity,
                     max_length=length), None


@dataclass
class SchemaProposal:
    """A typed Milvus schema for a Chroma collection, with the reason for every choice.

    ``schema()`` is the pymilvus ``CollectionSchema``, ``index_params()`` its indexes,
    ``to_row``/``from_row`` convert records, ``save``/``load`` keep it in a JSON file.
    """

    collection: str
    dim: int
    metric: str
    target: str
    primary: str  # "varchar": the Chroma id is the key; "int64": an INT64 key, the id kept in "id"
    int_ids: str | None  # int64 primary only: "numeric" (int(id)) or "hash" (hash_id(id))
    id_max_length: int
    document_max_length: int
    document_nullable: bool
    none_document_as_empty: bool  # a target without nullable fields stores a None document as ""
    fields: list[FieldPlan]
    json_max_bytes: int | None = None  # the target's limit on the JSON field (None: none)
    partition_key: str | None = None
    num_partitions: int = 16
    scalar_indexes: dict[str, str] = field(default_factory=dict)
    vector_index: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ the schema
    @property
    def typed(self) -> list[FieldPlan]:
        """The metadata keys that have their own field."""
        return [f for f in self.fields if f.typed]

    @property
    def pk_field(self) -> str:
        """The primary-key field's name (search hits are keyed by it)."""
        return ID_FIELD if self.primary == "varchar" else PK_FIELD

    def schema(self) -> Any:  # -> pymilvus.CollectionSchema
        """The proposal as a pymilvus ``CollectionSchema``."""
        from pymilvus import CollectionSchema, DataType, FieldSchema

        fields = []
        if self.primary == "int64":
            fields.append(FieldSchema(PK_FIELD, DataType.INT64, is_primary=True, auto_id=False))
            fields.append(FieldSchema(ID_FIELD, DataType.VARCHAR, max_length=self.id_max_length))
        else:
            fields.append(FieldSchema(ID_FIELD, DataType.VARCHAR, is_primary=True, auto_id=False,
                                      max_length=self.id_max_length))
        fields.append(FieldSchema(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=self.dim))
        fields.append(FieldSchema(DOCUMENT_FIELD, DataType.VARCHAR, max_length=self.document_max_length,
                                  **({"nullable": True} if self.document_nullable else {})))
        for f in self.typed:
            kw: dict[str, Any] = {}
            if f.max_length:
                kw["max_length"] = f.max_length
            if f.nullable:
                kw["nullable"] = True
            if f.partition_key:
                kw["is_partition_key"] = True
            if f.dtype == "ARRAY":
                kw.update(element_type=getattr(DataType, f.element_type), max_capacity=f.max_capacity)
            fields.append(FieldSchema(f.key, getattr(DataType, f.dtype), **kw))
        fields.append(FieldSchema(JSON_FIELD, DataType.JSON))
        return CollectionSchema(fields, description=f"proposed from Chroma collection {self.collection}",
                                enable_dynamic_field=False)

    def index_params(self) -> Any:  # -> pymilvus IndexParams
        """The vector index and the scalar indexes on the fields the application filters on."""
        from pymilvus.milvus_client.index import IndexParams

        params = IndexParams()
        vi = self.vector_index
        params.add_index(VECTOR_FIELD, index_type=vi["index_type"], metric_type=self.metric,
                         params=vi.get("params", {}))
        for name, index_type in self.scalar_indexes.items():
            params.add_index(name, index_type=index_type, index_name=f"{name}_idx")
        return params

    def create(self, client: Any, name: str, drop: bool = False) -> None:
        """Create (or, with ``drop``, recreate) collection ``name`` with this schema, loaded."""
        if client.has_collection(name):
            if not drop:
                raise StoreError(f"Milvus already has a collection {name!r}: pick another name or "
                                 "pass drop=True to replace it.")
            client.drop_collection(name)
        kw = {"num_partitions": self.num_partitions} if self.partition_key else {}
        client.create_collection(name, schema=self.schema(), index_params=self.index_params(),
                                 consistency_level="Strong", **kw)
        client.load_collection(name)

    @property
    def output_fields(self) -> list[str]:
        """Every stored field but the vector."""
        return [ID_FIELD, DOCUMENT_FIELD, *(f.key for f in self.typed), JSON_FIELD]

    # ------------------------------------------------------------------ records ↔ rows
    def primary_key(self, chroma_id: str) -> str | int:
        """The primary-key value of a Chroma id under this proposal."""
        if self.primary == "varchar":
            return chroma_id
        if self.int_ids == "numeric":
            if not _fits_int64(chroma_id):
                raise DataError(f"Id {chroma_id!r} is not a decimal integer, but this schema maps ids "
                                "with int(); re-inspect the collection and propose again.")
            return int(chroma_id)
        return hash_id(chroma_id)

    def to_row(self, record: Record) -> dict[str, Any]:
        """A Milvus row for one Chroma record; DataError (one sentence) if it does not fit."""
        rid = record.id
        if len(rid.encode("utf-8")) > self.id_max_length:
            raise DataError(f"Id {rid[:40]!r}… is longer than {self.id_max_length} bytes: propose "
                            "again from the current collection.")
        vec = check_vectors(record.embedding, self.dim)[0]
        row: dict[str, Any] = {ID_FIELD: rid, VECTOR_FIELD: vec.tolist()}
        if self.primary == "int64":
            row[PK_FIELD] = self.primary_key(rid)
        doc = record.document
        if doc is None and not self.document_nullable:
            if not self.none_document_as_empty:
                raise DataError(f"Record {rid!r} has no document and the schema's document field is "
                                "not nullable: propose again from the current collection.")
            doc = ""
        if doc is not None and len(doc.encode("utf-8")) > self.document_max_length:
            raise DataError(f"The document of {rid!r} is {len(doc.encode('utf-8')):,} bytes, over the "
                            f"field's {self.document_max_length:,}: split it into smaller chunks.")
        row[DOCUMENT_FIELD] = doc
        meta = dict(record.metadata or {})
        for f in self.typed:
            value = meta.pop(f.key, None)
            if value is None and not f.nullable:
                raise DataError(f"Record {rid!r} has no {f.key!r}, which the schema requires: "
                                "propose again from the current collection (the key became optional).")
            if value is not None:
                self._check_value(rid, f, value)
            row[f.key] = value
        if self.json_max_bytes and meta:
            size = len(json.dumps(meta, ensure_ascii=False).encode("utf-8"))
            if size > self.json_max_bytes:
                raise DataError(f"The untyped metadata of {rid!r} is {size:,} bytes of JSON, over the "
                                f"target's {self.json_max_bytes:,}: shorten its longest values in Chroma.")
        row[JSON_FIELD] = meta
        return row

    def _check_value(self, rid: str, f: FieldPlan, value: Any) -> None:
        kinds = {"VARCHAR": "str", "INT64": "int", "DOUBLE": "float", "BOOL": "bool"}
        items = value if f.dtype == "ARRAY" and isinstance(value, list) else [value]
        want = kinds[f.element_type if f.dtype == "ARRAY" else f.dtype]
        ok = (isinstance(value, list) or f.dtype != "ARRAY") and all(_kind(v) == want for v in items)
        if ok and f.dtype == "ARRAY":
            ok = len(value) <= (f.max_capacity or 0)
        if ok and f.max_length:
            ok = all(_bytes(v) <= f.max_length for v in items)
        if not ok:
            raise DataError(f"Record {rid!r} has {f.key}={str(value)[:60]!r}, which does not fit the "
                            f"{f.dtype} field (type or size): propose again from the current collection.")

    def from_row(self, row: dict[str, Any]) -> Record:
        """The Chroma record a Milvus row (query with output_fields=["*"]) came from."""
        meta = dict(row.get(JSON_FIELD) or {})
        for f in self.typed:
            value = row.get(f.key)
            if value is not None:
                meta[f.key] = list(value) if f.dtype == "ARRAY" else value
        doc = row.get(DOCUMENT_FIELD)
        if doc == "" and self.none_document_as_empty:
            doc = None
        return Record(row[ID_FIELD], np.asarray(row[VECTOR_FIELD], dtype=np.float32), doc, meta or None)

    def write(self, client: Any, name: str, rows: list[dict[str, Any]]) -> None:
        """Write rows so that writing them again replaces them (no duplicate primary keys).

        Upsert, except on the 2.3.5 server with a partition key: there upsert puts rows in the
        wrong partitions (a tenant filter then finds 3 of a tenant's 32 rows, measured by
        tests/test_schema.py), so the rows' keys are deleted and the rows inserted.
        """
        if self.partition_key and self.target == "server":
            keys = [r[self.pk_field] for r in rows]
            literals = [milvus_string(k) if isinstance(k, str) else str(k) for k in keys]
            client.delete(name, filter=f"{self.pk_field} in [{','.join(literals)}]")
            client.insert(name, rows)
        else:
            client.upsert(name, rows)

    def insert(self, client: Any, name: str, records: Iterable[Record], batch_size: int = 500) -> int:
        """Write records into collection ``name`` in batches (``write``) and flush; return how many."""
        done, batch = 0, []
        for r in records:
            batch.append(self.to_row(r))
            if len(batch) == batch_size:
                self.write(client, name, batch)
                done, batch = done + len(batch), []
        if batch:
            self.write(client, name, batch)
            done += len(batch)
        client.flush(name)
        return done

    def fetch(self, client: Any, name: str, ids: Sequence[str]) -> list[Record]:
        """The records with these Chroma ids, read back from Milvus, in the order asked."""
        rows = client.query(name, filter=f"{ID_FIELD} in [{','.join(map(milvus_string, ids))}]",
                            output_fields=["*"])
        by_id = {r[ID_FIELD]: self.from_row(r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    # ------------------------------------------------------------------ explain, save, load
    def table(self) -> "Any":
        """Every field of the proposed schema with its type, parameters and the reason."""
        import pandas as pd

        pk = ("the Chroma id: search hits, upserts and deletes use it as is" if self.primary == "varchar"
              else "INT64 " + ("int(id): the ids are integers" if self.int_ids == "numeric"
                               else "hash_id(id): 64-bit BLAKE2b of the id"))
        rows = []
        if self.primary == "int64":
            rows.append((PK_FIELD, "INT64 (primary)", "", pk))
        rows.append((ID_FIELD, "VARCHAR" + (" (primary)" if self.primary == "varchar" else ""),
                     f"max_length={self.id_max_length}",
                     pk if self.primary == "varchar" else "the Chroma id, kept for lookups and the way back"))
        rows.append((VECTOR_FIELD, "FLOAT_VECTOR", f"dim={self.dim}",
                     f"{self.vector_index['index_type']} index, metric {self.metric} (Chroma space)"))
        rows.append((DOCUMENT_FIELD, "VARCHAR", f"max_length={self.document_max_length}"
                     + (", nullable" if self.document_nullable else ""), "the chunk text"))
        for f in self.typed:
            params = ", ".join(p for p in (
                f"max_length={f.max_length}" if f.max_length else "",
                f"element={f.element_type}, max_capacity={f.max_capacity}" if f.dtype == "ARRAY" else "",
                "nullable" if f.nullable else "",
                "partition key" if f.partition_key else "",
                f"{self.scalar_indexes[f.key]} index" if f.key in self.scalar_indexes else "") if p)
            rows.append((f.key, f.dtype, params, f.reason))
        rest = [f.key for f in self.fields if not f.typed]
        rows.append((JSON_FIELD, "JSON", "", "the other keys, under their own names: "
                     + (", ".join(rest) if rest else "none")))
        return pd.DataFrame(rows, columns=["field", "type", "parameters", "why"]).set_index("field")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``SchemaProposal.from_dict`` reads it back)."""
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SchemaProposal":
        """Read a proposal written by ``to_dict``."""
        data = dict(data)
        if data.pop("schema_version", None) != SCHEMA_VERSION:
            raise ConfigError(f"This schema file is not a version-{SCHEMA_VERSION} proposal from "
                              "helpers.schema: write it again with `python -m helpers.schema propose`.")
        try:
            data["fields"] = [FieldPlan(**f) for f in data["fields"]]
            return cls(**data)
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"The schema file is incomplete or edited by hand ({exc}): write it "
                              "again with `python -m helpers.schema propose`.") from None

    def save(self, path: str | Path) -> Path:
        """Write the proposal as JSON to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SchemaProposal":
        """Read a proposal saved with ``save`` (the migration CLI's ``--schema FILE``)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError:
            raise ConfigError(f"Cannot read the schema file {path}: write one with "
                              "`python -m helpers.schema propose --out FILE`.") from None
        except ValueError:
            raise ConfigError(f"The schema file {path} is not valid JSON: write it again with "
                              "`python -m helpers.schema propose --out FILE`.") from None
        return cls.from_dict(data)


def propose(inspection: Inspection, target: str = "lite", primary: str = "varchar",
            min_share: float = 0.5, headroom: float = 2.0, partition_key: str | None = None,
            num_partitions: int = 16, filter_fields: Sequence[str] = ("doc_id", "tenant"),
            vector_index: dict[str, Any] | None = None) -> SchemaProposal:
    """Propose a typed Milvus schema for an inspected Chroma collection.

    ``target``: "lite" or "server" (what the Milvus accepts, see ``TARGETS``). ``primary``:
    "varchar" keeps Chroma's string ids as the key; "int64" makes an INT64 key (``int(id)``
    when every id is an integer, else a 64-bit hash) and keeps the id in a VARCHAR field.
    Keys on at least ``min_share`` of records with one consistent type get typed fields; the
    rest go to the JSON field, each with a note saying why. ``partition_key`` names a key
    that becomes the partition-key field (multi-tenancy); ``filter_fields`` get scalar indexes.
    """
    tgt = _target(target)
    if primary not in ("varchar", "int64"):
        raise ConfigError(f"primary={primary!r}: use 'varchar' (keep Chroma's ids) or 'int64'.")
    if not 0 <= min_share <= 1 or headroom < 1:
        raise ConfigError("min_share must be within 0..1 and headroom at least 1.")
    n = inspection.count
    notes: list[str] = []
    plans = []
    for stats in sorted(inspection.keys.values(), key=lambda s: (-s.present, s.key)):
        plan, note = _plan_key(stats, n, tgt, min_share, headroom)
        plans.append(plan)
        if note:
            notes.append(note)

    int_ids = None
    if primary == "int64":
        int_ids = "numeric" if inspection.ids_numeric else "hash"
        if int_ids == "hash" and inspection.id_hash_collisions:
            raise DataError(f"{inspection.id_hash_collisions} ids share a 64-bit hash with another id: "
                            "keep the string ids as the primary key (primary='varchar').")
    if partition_key is not None:
        plan = next((p for p in plans if p.key == partition_key), None)
        if plan is None or plan.dtype not in ("VARCHAR", "INT64") or plan.nullable:
            raise ConfigError(f"Partition key {partition_key!r} must be a metadata key present on every "
                              "record with one string or integer type; fill it in Chroma first, or "
                              "choose another key.")
        plan.partition_key = True
        plan.reason += "; partition key: Milvus hashes it to one of the partitions"
    indexes: dict[str, str] = {}
    if primary == "int64":
        indexes[ID_FIELD] = tgt.scalar_index["VARCHAR"]  # lookups by the Chroma id
    for name in filter_fields:
        plan = next((p for p in plans if p.key == name), None)
        if plan is None:
            continue
        if plan.typed and plan.dtype in tgt.scalar_index:
            indexes[name] = tgt.scalar_index[plan.dtype]
        else:
            notes.append(f"'{name}' is filtered on but is {plan.dtype}: no scalar index (filter with "
                         f'{JSON_FIELD}["{name}"] if it is in JSON).')

    doc_nullable = inspection.documents_none > 0 and tgt.nullable
    none_as_empty = inspection.documents_none > 0 and not tgt.nullable
    if none_as_empty:
        if inspection.documents_empty:
            notes.append(f"{inspection.documents_none} documents are None and {inspection.documents_empty} "
                         "are empty strings; the target has no nullable fields, so both come back "
                         "as None (not lossless): give the empty ones a text first.")
        else:
            notes.append(f"{inspection.documents_none} records have no document; the target has no "
                         "nullable fields, so they are stored as '' (no document is '', so this is lossless).")
    if inspection.document_max_bytes > MAX_VARCHAR_BYTES:
        notes.append(f"The longest document is {inspection.document_max_bytes:,} bytes, over the VARCHAR "
                     f"limit of {MAX_VARCHAR_BYTES:,}: split such documents before migrating "
                     "(to_row refuses them).")
    vi = vector_index or {"index_type": "HNSW",
                          "params": {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION}}
    try:
        metric = METRICS[inspection.space]
    except KeyError:
        raise ConfigError(f"Chroma space {inspection.space!r} is unknown: expected cosine, l2 or ip.") from None
    return SchemaProposal(
        collection=inspection.collection, dim=inspection.dim, metric=metric, target=tgt.name,
        primary=primary, int_ids=int_ids, id_max_length=varchar_length(inspection.id_max_bytes, headroom),
        document_max_length=varchar_length(inspection.document_max_bytes, headroom),
        document_nullable=doc_nullable, none_document_as_empty=none_as_empty, fields=plans,
        json_max_bytes=tgt.json_max_bytes,
        partition_key=partition_key, num_partitions=num_partitions, scalar_indexes=indexes,
        vector_index=vi, notes=notes)


# ----------------------------------------------------------------------------- search
def search(client: Any, name: str, proposal: SchemaProposal, queries: np.ndarray, k: int = 5,
           filter: str = "", tenant: str | int | None = None, batch_size: int = 100,
           output_fields: Sequence[str] = (ID_FIELD,), ef: int = HNSW_EF) -> list[list[Hit]]:
    """Top-``k`` per query, optionally filtered (a Milvus expression) and/or to one tenant.

    ``tenant`` filters on the proposal's partition-key field, so Milvus searches only the
    partition that tenant hashes to. Queries go ``batch_size`` per call (Milvus Lite costs
    ~20 ms per call whatever it does). Hits are ``Hit``s; ``text`` is the document when asked.
    """
    q = check_vectors(queries, proposal.dim)
    expr = filter
    if tenant is not None:
        if not proposal.partition_key:
            raise ConfigError("This schema has no partition key: propose(..., partition_key='tenant').")
        cond = f"{proposal.partition_key} == {milvus_string(tenant)}"
        expr = f"({expr}) and {cond}" if expr else cond
    out: list[list[Hit]] = []
    for i in range(0, len(q), batch_size):
        res = client.search(name, data=q[i:i + batch_size].tolist(), limit=k, filter=expr,
                            anns_field=VECTOR_FIELD, output_fields=list(output_fields),
                            search_params={"metric_type": proposal.metric, "params": {"ef": max(ef, k)}})
        for hits in res:
            row = []
            for h in hits:
                ent = dict(h["entity"])
                raw = float(h["distance"])
                text = ent.pop(DOCUMENT_FIELD, None) or ""
                rid = ent.pop(ID_FIELD, h["id"])
                row.append(Hit(str(rid), -raw if proposal.metric == "L2" else raw, raw, text, ent))
            out.append(row)
    return out


def measure_tenant_latency(client: Any, name: str, proposal: SchemaProposal, queries: np.ndarray,
                           tenants: Sequence[str], k: int = 5, batch_size: int = 100,
                           single: int = 50) -> "Any":
    """Search latency per query without and with the tenant filter, one query per call and batched.

    Query ``i`` belongs to ``tenants[i]``. One call takes one filter, so the batched, filtered
    run sends each tenant's queries together. Returns one row per (calls, filter) with the
    queries, calls, total seconds and milliseconds per query.
    """
    import time

    import pandas as pd

    q = check_vectors(queries, proposal.dim)
    search(client, name, proposal, q[:1], k=k)  # warm-up: the first call loads caches
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(tenants[:len(q)]):
        groups.setdefault(t, []).append(i)
    rows = []
    for filtered in (False, True):
        start = time.perf_counter()
        for i in range(min(single, len(q))):
            search(client, name, proposal, q[i:i + 1], k=k, tenant=tenants[i] if filtered else None)
        rows.append(("one query per call", filtered, min(single, len(q)), min(single, len(q)),
                     time.perf_counter() - start))
        start, calls = time.perf_counter(), 0
        for t, idx in (groups.items() if filtered else [(None, list(range(len(q))))]):
            search(client, name, proposal, q[idx], k=k, tenant=t, batch_size=batch_size)
            calls += -(-len(idx) // batch_size)
        rows.append((f"batches of ≤{batch_size}", filtered, len(q), calls, time.perf_counter() - start))
    df = pd.DataFrame(rows, columns=["calls", "tenant filter", "queries", "calls made", "seconds"])
    df["ms per query"] = 1000 * df["seconds"] / df["queries"]
    return df


# ------------------------------------------------------------ a labelled multi-tenant KB
def tenant_of(doc_id: str, n_tenants: int) -> str:
    """A synthetic tenant for a document (stable CRC32 of its id): every chunk of it agrees."""
    return f"tenant-{zlib.crc32(doc_id.encode('utf-8')) % n_tenants:02d}"


def tenant_metadata(chunk: Chunk, n_tenants: int) -> dict[str, Any]:
    """A chunk's metadata as a multi-tenant RAG service would keep it.

    ``doc_id``, ``position``, ``section`` (when the chunk has a heading), ``source`` (the page's
    URL), ``has_code`` (only on chunks with a code example: a key that is sometimes missing) and
    a SYNTHETIC ``tenant`` (``tenant_of``).
    """
    meta: dict[str, Any] = {"doc_id": chunk.doc_id, "position": chunk.position,
                            "source": f"https://docs.python.org/3.11/{chunk.doc_id}.html",
                            "tenant": tenant_of(chunk.doc_id, n_tenants)}
    if chunk.section:
        meta["section"] = chunk.section
    if ">>>" in chunk.text or "::" in chunk.text:
        meta["has_code"] = True  # a flag set only when true: a key that is sometimes missing
    return meta


def fill_chroma(collection: Any, chunks: Sequence[Chunk], vectors: np.ndarray,
                metadatas: Sequence[dict[str, Any]], batch_size: int = CHROMA_MAX_BATCH) -> int:
    """Upsert chunks with the given metadata into a Chroma collection, in batches."""
    vecs = np.asarray(vectors, dtype=np.float32)
    for i in range(0, len(chunks), batch_size):
        part = slice(i, i + batch_size)
        collection.upsert(ids=[c.id for c in chunks[part]], embeddings=vecs[part],
                          documents=[c.text for c in chunks[part]], metadatas=list(metadatas[part]))
    return len(chunks)


# ---------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.schema propose``: inspect a Chroma collection, write the proposal."""
    from . import config
    from .errors import KitError

    parser = argparse.ArgumentParser(prog="python -m helpers.schema", description=main.__doc__)
    parser.add_argument("command", choices=("inspect", "propose"))
    parser.add_argument("--chroma-path", default=None, help="Chroma folder (default: $CHROMA_PATH or data/chroma)")
    parser.add_argument("--collection", default=config.KB_COLLECTION)
    parser.add_argument("--target", choices=sorted(TARGETS), default=None,
                        help="what the Milvus accepts (default: from $MILVUS_URI)")
    parser.add_argument("--primary", choices=("varchar", "int64"), default="varchar")
    parser.add_argument("--partition-key", default=None, help="metadata key to partition by (tenant)")
    parser.add_argument("--out", default=None, help="write the proposal here (JSON) for `--schema FILE`")
    args = parser.parse_args(argv)
    try:
        from .stores import ChromaStore

        store = ChromaStore(args.chroma_path, args.collection, create=False)
        report = inspect_collection(store.collection, progress=True)
        if args.command == "inspect":
            print(json.dumps(report.summary(), indent=2))
            print(report.table().to_string())
            return 0
        proposal = propose(report, target=args.target or target_for(config.milvus_uri()),
                           primary=args.primary, partition_key=args.partition_key)
        print(proposal.table().to_string())
        for note in proposal.notes:
            print("note:", note)
        if args.out:
            print(f"proposal written to {proposal.save(args.out)}")
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
