"""Copy a Chroma collection into Milvus without losing anything: preflight, resumable load, verify.

    python -m helpers.migrate --chroma-path DIR --collection NAME --milvus-uri URI \\
        [--target-collection NAME] [--batch-size N] [--all] [--verify-only] [--restart] \\
        [--on-long-document fail|truncate|skip] [--on-bad-vector fail|skip] [--on-unstorable fail|skip]

Exit status: 0 migrated and verified; 1 verification found differences (the diff names the
records); 2 refused before writing anything (preflight, or a wrong setting).

How it works, and why:

1. **Stream.** Records are read from Chroma in pages (``get(include=..., limit, offset)``; a
   ``get`` without a limit fails past ~32k rows), vectors cast from Chroma's float64 to float32.
   At most three pages are in memory: the one being checked and the next two, read meanwhile
   by background threads. Chroma's offset order is insertion order and stable while nobody writes.
   Chroma is read once: the preflight keeps the rows it checked in a ``Spool`` (a temporary
   file about the collection's size, ``TMPDIR`` chooses where), and the copy writes those.
2. **Preflight before any write.** A first pass reads every record and sorts out those that
   Milvus cannot hold as they are: a vector whose dimension differs from the first record's
   (or the existing target's), a NaN or infinite component, a document over Milvus's VARCHAR
   limit (65,535 bytes), an id or metadata the mapping cannot store (the mirror: an id over
   65,535 bytes, metadata over 65,536 bytes of JSON, the server's limit). Unless an option says
   what to do with them (``--on-long-document truncate|skip``, ``--on-bad-vector skip``,
   ``--on-unstorable skip``), the run stops naming the ids and the option, and writes nothing.
3. **The lossless mirror** (``Mirror``, the default mapping): ``id`` VARCHAR primary key (the
   Chroma id), ``embedding`` FLOAT_VECTOR (dimension from the data, metric from the Chroma
   space: cosine → COSINE, l2 → L2, ip → IP), ``document`` VARCHAR, ``metadata`` JSON (the
   Chroma dict as it was, lists included). The Milvus 2.3 server has no nullable fields, so
   "no document" and "no metadata" are two BOOL flags, ``has_document`` and ``has_metadata``,
   beside an empty value: ``None`` and ``""`` (or ``None`` and a missing dict) stay different,
   on Lite and on a server alike. A mapping is any object with ``dim``, ``metric``, ``schema()``,
   ``index_params()``, ``to_row(record)`` (DataError when a record does not fit) and
   ``from_row(row)``: a typed schema (``helpers.schema.SchemaProposal``) plugs in the same way.
4. **Exactly once, resumable.** A Milvus server keeps both rows when a primary key is inserted
   twice (Lite overwrites), so every write is an ``upsert``: writing a record again replaces it.
   After each page the run records a checkpoint (the next Chroma offset, counts) in a small
   collection of the target database, ``chroma_migration_state``, after the page's upsert has
   been acknowledged (and once before the first page, so the target is known to be this
   migration's). Killed at any moment (SIGKILL included), the next run with the same command
   resumes at the checkpoint; the page in flight, written or not, partly or wholly, is
   upserted again: no gaps, no duplicates. The checkpoint lives with the data (a server on
   another machine, a Lite folder) and goes when the target is dropped; Lite appends every
   acknowledged write to its log before answering, so a killed process loses no acknowledged
   write. A resume refuses when the source changed meanwhile (its record count), or when the
   target collection was not made by this migration; ``--restart`` drops it and starts over.
5. **Verify** (after the copy, or alone with ``--verify-only``), page by page: the counts, the
   ids (missing, extra, duplicated), every vector within float32 tolerance, documents and
   metadata equal (types included: ``1`` ≠ ``1.0`` ≠ ``True``), and the top-k overlap between
   Chroma and Milvus on sample queries. Records the options truncated or skipped are expected
   truncated or absent.
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol

import numpy as np

from . import config
from .errors import ConfigError, DataError, KitError, StoreError
from .schema import METRICS, Record, chroma_space
from .stores import (CHROMA_MAX_BATCH, HNSW_EF, HNSW_EF_CONSTRUCTION, HNSW_M, MAX_VARCHAR_BYTES,
                     ChromaStore, milvus_client, milvus_string)

MAX_JSON_BYTES = 65_536  # the Milvus server's limit for one JSON value (compact UTF-8)
MAX_CALL_BYTES = 16 * 2**20  # per upsert call: well under gRPC's 64 MB message limit
STATE_COLLECTION = "chroma_migration_state"
EXAMPLES = 10  # offending or differing ids named per category
VECTOR_TOLERANCE = 1e-6  # relative to the vector's largest component
CHOICES = {"long_document": ("fail", "truncate", "skip"), "bad_vector": ("fail", "skip"),
           "unstorable": ("fail", "skip")}
OPTION = {"long_document": "--on-long-document truncate|skip", "bad_vector": "--on-bad-vector skip",
          "unstorable": "--on-unstorable skip"}
WHAT = {"long_document": "documents over 65,535 bytes", "bad_vector": "unusable vectors",
        "unstorable": "ids or metadata the target cannot hold"}


class PreflightError(DataError):
    """Some records cannot be stored without loss and no option says what to do with them."""


# ------------------------------------------------------------------------------- mapping
class Mapping(Protocol):
    """How a Chroma record becomes a Milvus row and back (the mirror, or a typed schema)."""

    dim: int
    metric: str

    def schema(self) -> Any:
        """The pymilvus ``CollectionSchema``."""

    def index_params(self) -> Any:
        """The index parameters (vector field ``embedding``)."""

    def to_row(self, record: Record) -> dict[str, Any]:
        """The row for a record; DataError when it cannot be stored without loss."""

    def from_row(self, row: dict[str, Any]) -> Record:
        """The record a row (with every field, the vector included) came from."""

    def create(self, client: Any, name: str) -> None:
        """Create the target collection with this schema and index, loaded."""

    def write(self, client: Any, name: str, rows: list[dict[str, Any]]) -> None:
        """Write rows so that writing them again replaces them (idempotent)."""


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


@dataclass(frozen=True)
class Mirror:
    """The lossless default mapping: id, embedding, document, metadata, and two null flags."""

    dim: int
    metric: str

    def schema(self) -> Any:  # -> pymilvus.CollectionSchema
        """``id`` (primary key), ``embedding``, ``document``, ``has_document``, ``metadata``, ``has_metadata``."""
        from pymilvus import CollectionSchema, DataType, FieldSchema

        return CollectionSchema([
            FieldSchema("id", DataType.VARCHAR, is_primary=True, auto_id=False,
                        max_length=MAX_VARCHAR_BYTES),
            FieldSchema("embedding", DataType.FLOAT_VECTOR, dim=self.dim),
            FieldSchema("document", DataType.VARCHAR, max_length=MAX_VARCHAR_BYTES),
            FieldSchema("has_document", DataType.BOOL),
            FieldSchema("metadata", DataType.JSON),
            FieldSchema("has_metadata", DataType.BOOL),
        ], description="lossless mirror of a Chroma collection", enable_dynamic_field=False)

    def index_params(self) -> Any:  # -> pymilvus IndexParams
        """HNSW with Chroma's defaults (M 16, efConstruction 100), the source's metric."""
        from pymilvus.milvus_client.index import IndexParams

        params = IndexParams()
        params.add_index("embedding", index_type="HNSW", metric_type=self.metric,
                         params={"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION})
        return params

    def to_row(self, record: Record) -> dict[str, Any]:
        """The row; DataError for an id over 65,535 bytes or metadata over 65,536 bytes of JSON."""
        size = len(record.id.encode("utf-8"))
        if size > MAX_VARCHAR_BYTES:
            raise DataError(f"the id is {size:,} bytes, over Milvus's {MAX_VARCHAR_BYTES:,}")
        if record.metadata is not None and (size := _json_bytes(record.metadata)) > MAX_JSON_BYTES:
            raise DataError(f"the metadata is {size:,} bytes of JSON, over Milvus's {MAX_JSON_BYTES:,}")
        return {"id": record.id, "embedding": record.embedding,
                "document": record.document or "", "has_document": record.document is not None,
                "metadata": record.metadata or {}, "has_metadata": record.metadata is not None}

    def create(self, client: Any, name: str) -> None:
        """Create the collection (Strong consistency: verification reads its own writes)."""
        client.create_collection(name, schema=self.schema(), index_params=self.index_params(),
                                 consistency_level="Strong")

    def write(self, client: Any, name: str, rows: list[dict[str, Any]]) -> None:
        """Upsert: a server keeps duplicate primary keys on insert, upsert replaces them."""
        client.upsert(name, rows)

    def from_row(self, row: dict[str, Any]) -> Record:
        """The record back, ``None`` document and metadata restored from the flags."""
        return Record(row["id"], np.asarray(row["embedding"], dtype=np.float32),
                      row["document"] if row["has_document"] else None,
                      row["metadata"] if row["has_metadata"] else None)


# ------------------------------------------------------------------------------- policy
@dataclass(frozen=True)
class Policy:
    """What to do with records that cannot be stored as they are (default: refuse the run)."""

    long_document: str = "fail"  # fail | truncate (to 65,535 bytes) | skip
    bad_vector: str = "fail"  # fail | skip: wrong dimension, NaN or infinity
    unstorable: str = "fail"  # fail | skip: an id or metadata the mapping cannot hold

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not an option: use one of "
                                  f"{', '.join(allowed)}.")


@dataclass(frozen=True)
class Outcome:
    """What becomes of one record: written as is, truncated, skipped or refused (and why)."""

    action: str  # "write" | "truncate" | "skip" | "fail"
    record: Record  # as it will be stored (a truncated document is truncated here)
    row: dict[str, Any] | None = None
    problem: str = ""  # a key of CHOICES
    reason: str = ""


def truncate_utf8(text: str, max_bytes: int = MAX_VARCHAR_BYTES) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, never inside a character."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


def decide(record: Record, dim: int, mapping: Mapping, policy: Policy) -> Outcome:
    """Check one record against the target and apply the policy."""
    vec = record.embedding
    if vec.shape != (dim,):
        return Outcome(policy.bad_vector, record, None, "bad_vector",
                       f"{vec.size} dimensions, not {dim}")
    if not np.isfinite(vec).all():
        return Outcome(policy.bad_vector, record, None, "bad_vector", "NaN or infinite component")
    action = "write"
    doc = record.document
    if doc is not None and (size := len(doc.encode("utf-8"))) > MAX_VARCHAR_BYTES:
        if policy.long_document != "truncate":
            return Outcome(policy.long_document, record, None, "long_document",
                           f"document of {size:,} bytes")
        action, record = "truncate", replace(record, document=truncate_utf8(doc))
    try:
        row = mapping.to_row(record)
    except DataError as exc:
        return Outcome(policy.unstorable, record, None, "unstorable", str(exc))
    return Outcome(action, record, row, "long_document" if action == "truncate" else "")


# ------------------------------------------------------------------------------- source
def open_source(chroma_path: str | Path | None, collection: str) -> Any:  # -> chromadb Collection
    """The Chroma collection, with a clear error when the folder or the collection is missing."""
    return ChromaStore(chroma_path, collection, create=False).collection


def pages(collection: Any, batch_size: int, start: int = 0,
          ahead: int = 2) -> Iterator[tuple[int, list[Record]]]:
    """``(offset, records)`` pages of a Chroma collection from offset ``start``, vectors float32.

    ``ahead`` background threads read the next pages while the caller uses this one (Chroma
    releases the GIL for part of a read): at most ``ahead + 1`` pages are in memory."""
    if not 1 <= batch_size <= CHROMA_MAX_BATCH:
        raise ConfigError(f"--batch-size {batch_size} is out of range: use 1 to {CHROMA_MAX_BATCH:,} "
                          "(Chroma reads fail past ~32k SQL variables).")

    def read(offset: int) -> tuple[int, list[Record]]:
        res = collection.get(include=["embeddings", "documents", "metadatas"], limit=batch_size,
                             offset=offset)
        vectors = np.asarray(res["embeddings"], dtype=np.float32)  # Chroma returns float64
        return offset, [Record(i, v, d, m) for i, v, d, m in
                        zip(res["ids"], vectors, res["documents"], res["metadatas"])]

    with ThreadPoolExecutor(ahead) as pool:
        queue = deque(pool.submit(read, start + i * batch_size) for i in range(ahead))
        following = start + ahead * batch_size
        while True:
            offset, records = queue.popleft().result()
            if not records:
                return
            queue.append(pool.submit(read, following))
            following += batch_size
            yield offset, records
            if len(records) < batch_size:  # a short page is the last one
                return


def target_name(chroma_name: str) -> str:
    """A Milvus collection name for a Chroma one (a server allows letters, digits and ``_``)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", chroma_name)
    return name if re.match(r"[A-Za-z_]", name) else f"c_{name}"


def _first(collection: Any) -> Record | None:
    page = next(pages(collection, 1, ahead=1), None)
    return page[1][0] if page else None


# ------------------------------------------------------------------------------- preflight
@dataclass
class Preflight:
    """What the first pass found: counts per action, and the refused records by problem."""

    records: int = 0
    actions: Counter = field(default_factory=Counter)  # (action, problem) -> records
    examples: dict[str, list[str]] = field(default_factory=dict)  # problem -> "id: reason" lines

    def add(self, outcome: Outcome) -> None:
        """Count one record's outcome, keeping the first few refused ones as examples."""
        self.records += 1
        self.actions[outcome.action, outcome.problem] += 1
        if outcome.action == "fail":
            shown = self.examples.setdefault(outcome.problem, [])
            if len(shown) < EXAMPLES:
                shown.append(f"{outcome.record.id!r} ({outcome.reason})")

    def refused(self) -> dict[str, int]:
        """Refused records per problem."""
        return {p: n for (a, p), n in self.actions.items() if a == "fail"}

    def message(self) -> str:
        """One sentence per problem: how many, which ids, which option handles them."""
        parts = []
        for problem, n in self.refused().items():
            more = f" and {n - EXAMPLES:,} more" if n > EXAMPLES else ""
            parts.append(f"{n:,} record(s) with {WHAT[problem]}: {', '.join(self.examples[problem])}"
                         f"{more}; rerun with {OPTION[problem]} to handle them.")
        return "Nothing was written. " + " ".join(parts)


def preflight(records: Iterable[list[Record]], mapping: Mapping, policy: Policy,
              spool: Spool | None = None, start: int = 0) -> Preflight:
    """Decide every record before any write; raise PreflightError naming the refused ones.

    With a ``spool``, the decided rows of the records from position ``start`` on are kept in it,
    page by page, for the copy to write."""
    result = Preflight()
    for page in records:
        outcomes = [decide(record, mapping.dim, mapping, policy) for record in page]
        for outcome in outcomes:
            result.add(outcome)
        if spool is not None and result.records > start:
            spool.add(result.records, outcomes[max(0, start - (result.records - len(page))):])
    if result.refused():
        raise PreflightError(result.message())
    return result


class Spool:
    """The preflight's decided rows, page by page, in an unlinked temporary file.

    The copy then writes exactly what the preflight checked (a Chroma write in between cannot
    slip an unchecked record in) and Chroma is read once, not twice. The file holds about the
    collection's size on local disk (``TMPDIR`` chooses where) and disappears when closed or when
    the process dies.
    """

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="chroma-migration-")

    def add(self, end: int, outcomes: list[Outcome]) -> None:
        """Keep one page: the Chroma offset after it, and each record's (action, problem, row)."""
        pickle.dump((end, [(o.action, o.problem, o.row) for o in outcomes]), self._file,
                    protocol=pickle.HIGHEST_PROTOCOL)

    def __iter__(self) -> Iterator[tuple[int, list[tuple[str, str, dict[str, Any] | None]]]]:
        self._file.seek(0)
        while True:
            try:
                yield pickle.load(self._file)
            except EOFError:
                return

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()


# ------------------------------------------------------------------------------- state
def _state_collection(client: Any) -> None:
    from pymilvus import CollectionSchema, DataType, FieldSchema

    if client.has_collection(STATE_COLLECTION):
        return
    schema = CollectionSchema([
        FieldSchema("target", DataType.VARCHAR, is_primary=True, max_length=512),
        FieldSchema("state", DataType.JSON),
        FieldSchema("unused", DataType.FLOAT_VECTOR, dim=2),  # a collection needs a vector field
    ], description="checkpoints of helpers.migrate", enable_dynamic_field=False)
    index = client.prepare_index_params()
    index.add_index("unused", index_type="FLAT", metric_type="L2")
    client.create_collection(STATE_COLLECTION, schema=schema, index_params=index,
                             consistency_level="Strong")


def load_state(client: Any, target: str) -> dict[str, Any] | None:
    """The checkpoint of the migration into ``target``, or None."""
    if not client.has_collection(STATE_COLLECTION):
        return None
    client.load_collection(STATE_COLLECTION)
    rows = client.query(STATE_COLLECTION, filter=f"target == {milvus_string(target)}",
                        output_fields=["state"], consistency_level="Strong")
    return rows[0]["state"] if rows else None


def _save_state(client: Any, target: str, state: dict[str, Any]) -> None:
    client.upsert(STATE_COLLECTION, [{"target": target, "state": state, "unused": [1.0, 0.0]}])


def drop_target(client: Any, target: str) -> None:
    """Drop a target collection and its checkpoint."""
    if client.has_collection(target):
        client.drop_collection(target)
    if client.has_collection(STATE_COLLECTION):
        client.delete(STATE_COLLECTION, filter=f"target == {milvus_string(target)}")


# ------------------------------------------------------------------------------- migrate
@dataclass
class MigrationReport:
    """What one run did: records read, written, truncated, skipped; time and throughput."""

    source: str
    target: str
    uri: str
    source_records: int
    resumed_from: int
    read: int = 0
    written: int = 0
    truncated: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    preflight_s: float = 0.0
    seconds: float = 0.0
    verification: "VerificationReport | None" = None

    @property
    def records_per_s(self) -> float:
        """Records read per second of the whole run (preflight included)."""
        return self.read / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        """The report as a flat dict (for a table)."""
        return {"source": self.source, "target": self.target, "source records": self.source_records,
                "resumed from offset": self.resumed_from, "read": self.read, "written": self.written,
                "truncated": self.truncated, "skipped": sum(self.skipped.values()),
                "preflight s": round(self.preflight_s, 2), "seconds": round(self.seconds, 2),
                "records/s": round(self.records_per_s),
                "verified": None if self.verification is None else self.verification.ok}

    def __str__(self) -> str:
        skipped = ", ".join(f"{n} {p}" for p, n in self.skipped.items()) or "0"
        resumed = f" (resumed at offset {self.resumed_from:,})" if self.resumed_from else ""
        return (f"{self.source} → {self.target}{resumed}: read {self.read:,}, written {self.written:,}, "
                f"truncated {self.truncated:,}, skipped {skipped}; {self.seconds:.1f} s, "
                f"{self.records_per_s:,.0f} records/s")


def _source_key(collection: Any) -> dict[str, Any]:
    return {"collection": collection.name, "id": str(collection.id), "records": collection.count()}


def _row_bytes(row: dict[str, Any], dim: int) -> int:
    """An upper estimate of a row's size on the wire."""
    return (4 * dim + 256 + sum(4 * len(v) for v in row.values() if isinstance(v, str))
            + sum(_json_bytes(v) for v in row.values() if isinstance(v, dict)))


def write_rows(client: Any, target: str, rows: list[dict[str, Any]], mapping: Mapping) -> None:
    """Write rows (``mapping.write``) in calls of at most MAX_CALL_BYTES (gRPC refuses > 64 MB)."""
    call: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        row_size = _row_bytes(row, mapping.dim)
        if call and size + row_size > MAX_CALL_BYTES:
            mapping.write(client, target, call)
            call, size = [], 0
        call.append(row)
        size += row_size
    if call:
        mapping.write(client, target, call)


def migrate(chroma_path: str | Path | None, collection: str, milvus_uri: str | None = None,
            target: str | None = None, batch_size: int = 1000, policy: Policy = Policy(),
            mapping: Mapping | None = None, restart: bool = False, max_rate: float | None = None,
            verify_after: bool = True, progress: bool = True) -> MigrationReport:
    """Copy ``collection`` into Milvus (preflight, resumable upserts, checkpoints), then verify."""
    started = time.perf_counter()
    source = open_source(chroma_path, collection)
    target = target or target_name(collection)
    key = _source_key(source)
    uri = config.milvus_uri(milvus_uri)
    with milvus_client(uri) as client:
        if restart:
            drop_target(client, target)
        state = load_state(client, target)
        _check_resumable(client, target, state, key)
        first = _first(source)
        report = MigrationReport(collection, target, uri, key["records"],
                                 state["offset"] if state else 0)
        if first is None:  # an empty collection: no dimension, nothing to write
            report.seconds = time.perf_counter() - started
            return report
        mapping = mapping or Mirror(_target_dim(client, target) or first.embedding.size,
                                    METRICS[chroma_space(source)])
        if state and state["mapping"] != type(mapping).__name__:
            raise ConfigError(f"{target!r} was started with the {state['mapping']} mapping, not "
                              f"{type(mapping).__name__}: rerun with --restart to start over.")
        with Spool() as spool:
            preflight((page for _, page in pages(source, batch_size)), mapping, policy,
                      spool, report.resumed_from)
            report.preflight_s = time.perf_counter() - started
            if not client.has_collection(target):
                mapping.create(client, target)
            _state_collection(client)
            state = state or {"source": key, "mapping": type(mapping).__name__,
                              "policy": asdict(policy), "offset": 0, "done": False}
            _save_state(client, target, state)  # from now on the target is this migration's
            bar = _bar(progress, key["records"], report.resumed_from, f"migrate {collection}")
            t0 = time.perf_counter()
            for end, decided in spool:
                write_rows(client, target, [row for _, _, row in decided if row is not None], mapping)
                state["offset"] = end
                _save_state(client, target, state)  # after the page's upsert was acknowledged
                for action, problem, row in decided:
                    report.read += 1
                    report.written += row is not None
                    report.truncated += action == "truncate"
                    if action == "skip":
                        report.skipped[problem] = report.skipped.get(problem, 0) + 1
                if bar is not None:
                    bar.update(len(decided))
                if max_rate:  # spare a busy Milvus (and make an interruption easy to demonstrate)
                    time.sleep(max(0.0, report.read / max_rate - (time.perf_counter() - t0)))
            if bar is not None:
                bar.close()
        client.flush(target)
        client.load_collection(target)
        state["done"] = True
        _save_state(client, target, state)
        report.seconds = time.perf_counter() - started
        if verify_after:
            report.verification = _verify(client, source, target, mapping, policy, batch_size,
                                          progress=progress)
    return report


def _check_resumable(client: Any, target: str, state: dict[str, Any] | None,
                     key: dict[str, Any]) -> None:
    if state is None and client.has_collection(target):
        raise ConfigError(f"Milvus already has a collection {target!r} that this migration did not "
                          "make: choose another --target-collection, or pass --restart to drop it.")
    if state is not None and state["source"] != key:
        was = state["source"]
        raise ConfigError(f"{target!r} holds an unfinished migration of Chroma collection "
                          f"{was['collection']!r} ({was['records']:,} records), which no longer matches "
                          f"{key['collection']!r} ({key['records']:,} records): the source changed; "
                          "rerun with --restart to start over.")


def _target_dim(client: Any, target: str) -> int | None:
    if not client.has_collection(target):
        return None
    for f in client.describe_collection(target)["fields"]:
        if f["name"] == "embedding":
            return int(f["params"]["dim"])
    raise StoreError(f"Milvus collection {target!r} has no 'embedding' field: it is not a migration "
                     "target; choose another --target-collection.")


def _bar(progress: bool, total: int, initial: int, desc: str):  # -> tqdm | None
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="rec")


# ------------------------------------------------------------------------------- verify
@dataclass
class Differences:
    """How many records differ in one way, and the first few named."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        """Count one difference, keeping its description if it is among the first few."""
        self.count += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(line)


@dataclass
class VerificationReport:
    """Source against target: counts, ids, vectors, documents, metadata, top-k overlap."""

    source_records: int
    expected: int  # records that should be in Milvus (after the options' skips)
    target_rows: int
    checks: dict[str, Differences]
    top_k: int
    overlap: float
    min_overlap: float
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every check holds."""
        return (self.target_rows == self.expected and round(self.overlap, 9) >= self.min_overlap
                and all(d.count == 0 for d in self.checks.values()))

    def summary(self) -> dict[str, Any]:
        """The checks as a flat dict (for a table)."""
        return {"source records": self.source_records, "expected in Milvus": self.expected,
                "rows in Milvus": self.target_rows,
                **{k: d.count for k, d in self.checks.items()},
                f"top-{self.top_k} overlap": round(self.overlap, 3), "ok": self.ok}

    def diff(self) -> str:
        """What differs, naming the records; empty when everything holds."""
        lines = []
        if self.target_rows != self.expected:
            lines.append(f"count: Milvus has {self.target_rows:,} rows, {self.expected:,} expected")
        for name, d in self.checks.items():
            if d.count:
                lines.append(f"{name} ({d.count:,}):")
                lines += [f"  {e}" for e in d.examples]
                if d.count > len(d.examples):
                    lines.append(f"  … and {d.count - len(d.examples):,} more")
        if round(self.overlap, 9) < self.min_overlap:
            lines.append(f"top-{self.top_k} overlap {self.overlap:.3f} is under {self.min_overlap}")
        return "\n".join(lines)

    def __str__(self) -> str:
        verdict = "OK" if self.ok else "FAILED"
        return (f"verification {verdict}: {self.target_rows:,} rows in Milvus for {self.expected:,} "
                f"expected, top-{self.top_k} overlap {self.overlap:.3f}"
                + ("" if self.ok else "\n" + self.diff()))


def _fetch(client: Any, target: str, mapping: Mapping, ids: list[str]) -> dict[str, Record]:
    """The target's records with these Chroma ids (duplicates collapse), by id."""
    if not ids:
        return {}
    rows = client.query(target, filter=f"id in [{','.join(milvus_string(i) for i in ids)}]",
                        output_fields=["*"], consistency_level="Strong")
    return {r.id: r for r in map(mapping.from_row, rows)}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)  # 1, 1.0 and true stay distinct


def _compare(want: Record, got: Record, checks: dict[str, Differences]) -> None:
    a, b = want.embedding, got.embedding
    if a.shape != b.shape or np.abs(a - b).max() > VECTOR_TOLERANCE * max(1.0, np.abs(a).max()):
        delta = np.abs(a - b).max() if a.shape == b.shape else f"{b.size} dimensions"
        checks["vector differs"].add(f"{want.id!r}: max |Δ| {delta}")
    if want.document != got.document:
        w, g = str(want.document), str(got.document)
        at = next((i for i, (x, y) in enumerate(zip(w, g)) if x != y), min(len(w), len(g)))
        start = max(0, at - 20)
        checks["document differs"].add(f"{want.id!r} from character {at}: …{w[start:at + 40]!r} in "
                                       f"Chroma, …{g[start:at + 40]!r} in Milvus")
    if _canonical(want.metadata) != _canonical(got.metadata):
        checks["metadata differs"].add(f"{want.id!r}: {_canonical(want.metadata)[:80]} in Chroma, "
                                       f"{_canonical(got.metadata)[:80]} in Milvus")


def _count(client: Any, target: str) -> int:
    res = client.query(target, filter="", output_fields=["count(*)"], consistency_level="Strong")
    return int(res[0]["count(*)"])


def _extra_ids(client: Any, source: Any, target: str, mapping: Mapping, policy: Policy,
               batch_size: int, checks: dict[str, Differences]) -> None:
    """Name the target's ids that Chroma does not have, or that the options skip."""
    it = client.query_iterator(target, batch_size=batch_size, output_fields=["id"])
    try:
        while batch := it.next():
            ids = sorted({r["id"] for r in batch})
            res = source.get(ids=ids, include=["embeddings", "documents", "metadatas"])
            kept = {i for i, v, d, m in zip(res["ids"], res["embeddings"], res["documents"],
                                            res["metadatas"])
                    if decide(Record(i, np.asarray(v, np.float32), d, m), mapping.dim, mapping,
                              policy).row is not None}
            for i in ids:
                if i not in kept:
                    checks["extra in Milvus"].add(repr(i))
    finally:
        it.close()


def _top_k_overlap(client: Any, source: Any, target: str, mapping: Mapping, queries: np.ndarray,
                   skipped: set[str], k: int) -> float:
    """Mean share of Chroma's top-k ids (less those the options skip) that Milvus also returns."""
    n = min(source.count(), k + len(skipped))
    want = [[i for i in ids if i not in skipped][:k]
            for ids in source.query(query_embeddings=queries, n_results=n, include=[])["ids"]]
    got = client.search(target, data=queries.tolist(), limit=k, anns_field="embedding",
                        search_params={"metric_type": mapping.metric,
                                       "params": {"ef": max(HNSW_EF, k)}},
                        output_fields=["id"])
    shares = [len(set(w) & {h["entity"]["id"] for h in g}) / len(w) for w, g in zip(want, got) if w]
    return float(np.mean(shares)) if shares else 1.0


def _verify(client: Any, source: Any, target: str, mapping: Mapping, policy: Policy,
            batch_size: int, samples: int = 20, k: int = 10, min_overlap: float = 0.9,
            progress: bool = True) -> "VerificationReport":
    started = time.perf_counter()
    client.load_collection(target)
    checks = {name: Differences() for name in
              ("missing in Milvus", "extra in Milvus", "vector differs", "document differs",
               "metadata differs")}
    total = source.count()
    sample_at = set(np.linspace(0, total - 1, min(samples, total)).astype(int).tolist())
    queries: list[np.ndarray] = []  # stored vectors spread over the collection
    skipped: set[str] = set()  # ids the options skip (few, or the preflight would have said so)
    expected = found = 0
    bar = _bar(progress, total, 0, f"verify {target}")
    for offset, records in pages(source, batch_size):
        wanted = {}
        for at, r in enumerate(records, offset):
            outcome = decide(r, mapping.dim, mapping, policy)
            if outcome.row is None:
                skipped.add(r.id)
                continue
            wanted[r.id] = outcome.record
            if at in sample_at:
                queries.append(r.embedding)
        got = _fetch(client, target, mapping, [r.id for r in records])
        for rid, want in wanted.items():
            if rid in got:
                _compare(want, got[rid], checks)
            else:
                checks["missing in Milvus"].add(repr(rid))
        expected += len(wanted)
        found += len(wanted.keys() & got.keys())
        if bar is not None:
            bar.update(len(records))
    if bar is not None:
        bar.close()
    rows = _count(client, target)
    if rows != found:  # ids Chroma does not have (or skips), or a primary key stored twice
        _extra_ids(client, source, target, mapping, policy, batch_size, checks)
        repeated = rows - found - checks["extra in Milvus"].count
        if repeated > 0:
            checks["duplicated primary keys"] = Differences(repeated, [f"{repeated:,} row(s) repeat "
                                                                       "an id already counted"])
    k = max(1, min(k, expected))
    overlap = (_top_k_overlap(client, source, target, mapping, np.vstack(queries), skipped, k)
               if queries else 1.0)
    return VerificationReport(total, expected, rows, checks, k, overlap, min_overlap,
                              time.perf_counter() - started)


def verify(chroma_path: str | Path | None, collection: str, milvus_uri: str | None = None,
           target: str | None = None, batch_size: int = 1000, policy: Policy = Policy(),
           mapping: Mapping | None = None, samples: int = 20, k: int = 10,
           min_overlap: float = 0.9, progress: bool = True) -> VerificationReport:
    """Compare a Chroma collection with its Milvus copy, page by page (see VerificationReport)."""
    source = open_source(chroma_path, collection)
    target = target or target_name(collection)
    with milvus_client(milvus_uri) as client:
        dim = _target_dim(client, target)
        if dim is None:
            raise StoreError(f"Milvus has no collection {target!r} to verify: migrate first, or name "
                             "it with --target-collection.")
        mapping = mapping or Mirror(dim, METRICS[chroma_space(source)])
        return _verify(client, source, target, mapping, policy, batch_size, samples, k,
                       min_overlap, progress)


# ------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers.migrate",
                                description="Copy Chroma collections into Milvus: preflight, "
                                            "resumable load, verification.")
    p.add_argument("--chroma-path", help="Chroma's persistent folder (default: $CHROMA_PATH or data/chroma)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--collection", help="the Chroma collection to migrate")
    which.add_argument("--all", action="store_true", help="migrate every collection of the database")
    p.add_argument("--milvus-uri", help="a Lite file ending in .db or http://host:port "
                                        "(default: $MILVUS_URI or data/milvus_kit.db)")
    p.add_argument("--target-collection", help="the Milvus collection (default: the Chroma name, "
                                               "with characters other than letters, digits and _ as _)")
    p.add_argument("--batch-size", type=int, default=1000, help="records per page (default 1000)")
    p.add_argument("--schema", metavar="FILE|proposed",
                   help="a typed schema instead of the lossless mirror: a proposal saved by "
                        "`python -m helpers.schema` (JSON), or 'proposed' to inspect the source "
                        "and use the proposal for this target")
    p.add_argument("--verify-only", action="store_true", help="compare source and target, write nothing")
    p.add_argument("--no-verify", action="store_true", help="skip the verification after the copy")
    p.add_argument("--restart", action="store_true", help="drop the target and its checkpoint first")
    p.add_argument("--on-long-document", choices=CHOICES["long_document"], default="fail",
                   help="documents over 65,535 bytes (default: fail)")
    p.add_argument("--on-bad-vector", choices=CHOICES["bad_vector"], default="fail",
                   help="a wrong dimension, NaN or infinity (default: fail)")
    p.add_argument("--on-unstorable", choices=CHOICES["unstorable"], default="fail",
                   help="ids or metadata the target cannot hold (default: fail)")
    p.add_argument("--max-rate", type=float,
                   help="records written per second at most, to spare a busy Milvus")
    p.add_argument("--samples", type=int, default=20, help="sample queries for the top-k check")
    p.add_argument("--top-k", type=int, default=10, help="k of the top-k overlap check")
    p.add_argument("--min-overlap", type=float, default=0.9, help="the top-k overlap required")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _collections(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(Chroma name, Milvus name) pairs to work on."""
    if not args.all:
        return [(args.collection, args.target_collection or target_name(args.collection))]
    if args.target_collection:
        raise ConfigError("--target-collection names one collection: drop it when using --all.")
    import chromadb

    names = sorted(c.name for c in chromadb.PersistentClient(str(config.chroma_path(args.chroma_path)))
                   .list_collections())
    targets = [target_name(n) for n in names]
    clash = [t for t, n in Counter(targets).items() if n > 1]
    if clash:
        raise ConfigError(f"Several Chroma collections map to the Milvus name {clash[0]!r}: migrate "
                          "them one by one with --collection and --target-collection.")
    return list(zip(names, targets))


def interrupted_run(args: list[str], kill_after: int, timeout: float = 120) -> int:
    """Run this CLI in a subprocess and SIGKILL it once its progress bar passes ``kill_after``
    records (a crash in the middle of a migration); return its exit status (−9)."""
    proc = subprocess.Popen([sys.executable, "-m", "helpers.migrate", *args], cwd=config.ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    passed = threading.Event()

    def watch() -> None:  # tqdm writes "migrate NAME: 40%|████ | 1200/3000 …" to stderr
        tail = b""
        while chunk := proc.stderr.read1(4096):
            tail = (tail + chunk)[-4096:]
            if any(int(n) >= kill_after for n in re.findall(rb"migrate .*?\| *(\d+)/", tail)):
                passed.set()

    threading.Thread(target=watch, daemon=True).start()
    if not passed.wait(timeout):
        proc.kill()
        raise StoreError(f"The migration did not pass {kill_after:,} records within {timeout:.0f} s: "
                         "check the command on its own.")
    proc.send_signal(signal.SIGKILL)
    return proc.wait(30)


def _mapping(args: argparse.Namespace, collection: str) -> Mapping | None:
    """The mapping the CLI was asked for: None (the mirror), a saved proposal, or a fresh one."""
    from .schema import SchemaProposal, inspect_collection, propose, target_for

    if args.schema is None:
        return None
    if args.schema == "proposed":
        source = open_source(args.chroma_path, collection)
        return propose(inspect_collection(source), target=target_for(config.milvus_uri(args.milvus_uri)))
    return SchemaProposal.load(args.schema)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return 0 (done and verified), 1 (verification failed) or 2 (refused)."""
    args = _parser().parse_args(argv)
    failed = False
    try:
        policy = Policy(args.on_long_document, args.on_bad_vector, args.on_unstorable)
        if not config.chroma_path(args.chroma_path).exists():
            raise ConfigError(f"There is no Chroma database at {config.chroma_path(args.chroma_path)}: "
                              "check --chroma-path.")
        check = dict(batch_size=args.batch_size, policy=policy, progress=not args.no_progress)
        verify_kw = dict(samples=args.samples, k=args.top_k, min_overlap=args.min_overlap)
        for name, target in _collections(args):
            mapping = _mapping(args, name)
            if args.verify_only:
                result = verify(args.chroma_path, name, args.milvus_uri, target, mapping=mapping,
                                **check, **verify_kw)
            else:
                report = migrate(args.chroma_path, name, args.milvus_uri, target, mapping=mapping,
                                 restart=args.restart, max_rate=args.max_rate, verify_after=False,
                                 **check)
                print(report, flush=True)
                if args.no_verify or report.source_records == 0:
                    continue
                result = verify(args.chroma_path, name, args.milvus_uri, target, mapping=mapping,
                                **check, **verify_kw)
            print(result, flush=True)
            failed |= not result.ok
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
