"""Back up a Milvus collection to a file and restore it, on Lite or a server alike.

The file is a folder holding ``manifest.json`` (schema, vector index, row count, where it came
from) and ``rows.jsonl.gz`` (every entity, vectors included, read with a query iterator so the
collection is never held in memory at once). It does not depend on the Milvus version that
wrote it, so it also carries a collection from Milvus Lite to a server (or back) and across
upgrades that cannot read older files (Milvus Lite 3.x cannot open a 2.x ``.db``).

For a server in production the official tool is ``milvus-backup`` (it copies the segment files
in object storage); this module is the kit's small, portable equivalent.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .errors import StoreError
from .rag import quiet_pymilvus

MANIFEST = "manifest.json"
ROWS = "rows.jsonl.gz"
# Build parameters a server requires but Milvus Lite's describe_index does not report.
_DEFAULT_BUILD_PARAMS = {"HNSW": {"M": 16, "efConstruction": 100}, "IVF_FLAT": {"nlist": 128},
                         "IVF_SQ8": {"nlist": 128}, "HNSW_SQ": {"M": 16, "efConstruction": 100}}
_VECTOR_TYPES = {"FLOAT_VECTOR", "FLOAT16_VECTOR", "BFLOAT16_VECTOR", "BINARY_VECTOR",
                 "SPARSE_FLOAT_VECTOR", "INT8_VECTOR"}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to a backup")


def _fields(description: dict[str, Any]) -> list[dict[str, Any]]:
    fields = []
    for f in description["fields"]:
        entry = {"name": f["name"], "type": f["type"].name, "params": dict(f.get("params", {})),
                 "is_primary": bool(f.get("is_primary", False))}
        for key in ("nullable", "auto_id", "is_partition_key"):
            if f.get(key):
                entry[key] = True
        fields.append(entry)
    return fields


def export_collection(client: Any, collection: str, path: str | Path, batch_size: int = 1000,
                      progress: bool = True) -> int:
    """Write every entity of ``collection`` with its schema and index to the folder ``path``.

    Returns the number of rows written. The collection must be loaded (a query iterator reads it).
    """
    if not client.has_collection(collection):
        raise StoreError(f"There is no collection {collection!r} to back up: check the name "
                         f"(this Milvus has {client.list_collections() or 'none'}).")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    description = client.describe_collection(collection)
    fields = _fields(description)
    vector = next(f["name"] for f in fields if f["type"] in _VECTOR_TYPES)
    index = {k: v for k, v in client.describe_index(collection, vector).items()
             if k not in {"total_rows", "indexed_rows", "pending_index_rows", "state"}}
    expected = int(client.query(collection, filter="", output_fields=["count(*)"],
                                consistency_level="Strong")[0]["count(*)"])
    written = 0
    with quiet_pymilvus():  # it warns that a Lite or 2.3 server gives no snapshot timestamp
        iterator = client.query_iterator(collection, batch_size=batch_size,
                                         output_fields=[f["name"] for f in fields])
    with gzip.open(path / ROWS, "wt", encoding="utf-8") as out, \
            tqdm(total=expected, desc=f"export {collection}", disable=not progress) as bar:
        try:
            while rows := iterator.next():
                for row in rows:
                    out.write(json.dumps(row, default=_json_default) + "\n")
                written += len(rows)
                bar.update(len(rows))
        finally:
            iterator.close()
    manifest = {"collection": collection, "rows": written, "fields": fields,
                "vector_field": vector, "index": index,
                "consistency_level": description.get("consistency_level_name", "Strong"),
                "source_version": client.get_server_version()}
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    if written != expected:
        raise StoreError(f"The backup of {collection!r} holds {written} rows but the collection "
                         f"counts {expected}: writes were running; pause them and back up again.")
    return written


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of the backup in folder ``path`` (StoreError if it is not a backup)."""
    file = Path(path) / MANIFEST
    if not file.is_file() or not (Path(path) / ROWS).is_file():
        raise StoreError(f"{path} is not a backup made by helpers.backup (no {MANIFEST} and "
                         f"{ROWS}): give the folder export_collection wrote.")
    return json.loads(file.read_text(encoding="utf-8"))


def import_collection(client: Any, path: str | Path, collection: str | None = None,
                      batch_size: int = 1000, progress: bool = True) -> int:
    """Recreate the backed-up collection (as ``collection``, default its old name), insert every
    row, build its index and load it. Returns the row count now in the collection."""
    from pymilvus import DataType

    manifest = read_manifest(path)
    name = collection or manifest["collection"]
    if client.has_collection(name):
        raise StoreError(f"Collection {name!r} already exists: restore under another name "
                         "(collection=...) or drop it first.")
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    for f in manifest["fields"]:
        extra = {k: True for k in ("nullable", "is_partition_key") if f.get(k)}
        schema.add_field(f["name"], DataType[f["type"]], is_primary=f["is_primary"],
                         **f["params"], **extra)
    idx = dict(manifest["index"])
    field, kind = idx.pop("field_name"), idx.pop("index_type")
    metric, index_name = idx.pop("metric_type"), idx.pop("index_name", "")
    params = idx or _DEFAULT_BUILD_PARAMS.get(kind, {})  # Lite records no build parameters
    index = client.prepare_index_params()
    index.add_index(field, index_type=kind, metric_type=metric, index_name=index_name, params=params)
    client.create_collection(name, schema=schema, index_params=index,
                             consistency_level=manifest["consistency_level"])
    batch: list[dict[str, Any]] = []
    with gzip.open(Path(path) / ROWS, "rt", encoding="utf-8") as rows, \
            tqdm(total=manifest["rows"], desc=f"import {name}", disable=not progress) as bar:
        for line in rows:
            batch.append(json.loads(line))
            if len(batch) == batch_size:
                client.insert(name, batch)
                bar.update(len(batch))
                batch = []
        if batch:
            client.insert(name, batch)
            bar.update(len(batch))
    client.flush(name)
    client.load_collection(name)
    return int(client.query(name, filter="", output_fields=["count(*)"],
                            consistency_level="Strong")[0]["count(*)"])
