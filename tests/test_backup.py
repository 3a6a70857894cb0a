"""Backup to a file and restore, on Milvus Lite and the local server (``milvus_uri``)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from helpers import backup
from helpers.errors import StoreError
from helpers.stores import MilvusStore


def test_round_trip_keeps_every_row_vector_and_the_index(tmp_path, milvus_uri, collection_name, small_kb):
    store = MilvusStore(milvus_uri, collection_name)
    restored_name = f"{collection_name}_restored"
    try:
        store.add_documents(small_kb.chunks, small_kb.vectors)
        n = backup.export_collection(store.client, collection_name, tmp_path / "bk", batch_size=50,
                                     progress=False)
        assert n == len(small_kb.chunks)
        manifest = backup.read_manifest(tmp_path / "bk")
        assert manifest["rows"] == n and manifest["index"]["index_type"] == "HNSW"
        assert manifest["index"]["metric_type"] == "COSINE"
        assert backup.import_collection(store.client, tmp_path / "bk", restored_name,
                                        progress=False) == n
        back = MilvusStore(milvus_uri, restored_name, create=False, client=store.client)
        q = small_kb.question_vectors[:5]
        assert [[h.id for h in r] for r in back.search(q)] == [[h.id for h in r] for r in store.search(q)]
        rows = store.client.get(restored_name, ids=[small_kb.chunks[7].id])
        assert np.allclose(rows[0]["embedding"], small_kb.vectors[7], atol=1e-6)
        assert rows[0]["text"] == small_kb.chunks[7].text
        with pytest.raises(StoreError, match="already exists"):
            backup.import_collection(store.client, tmp_path / "bk", restored_name, progress=False)
    finally:
        if store.client.has_collection(restored_name):
            store.client.drop_collection(restored_name)
        if store.mode == "server":
            store.client.drop_collection(collection_name)
        store.close()


def test_bad_names_and_folders_say_what_to_do(tmp_path):
    store = MilvusStore(str(tmp_path / "m.db"), "kb")
    try:
        with pytest.raises(StoreError, match="no collection 'nope' to back up"):
            backup.export_collection(store.client, "nope", tmp_path / "bk")
        with pytest.raises(StoreError, match="not a backup"):
            backup.import_collection(store.client, tmp_path)
    finally:
        store.close()


def test_rows_file_is_plain_json_lines(tmp_path, small_kb):
    store = MilvusStore(str(tmp_path / "m.db"), "kb")
    try:
        store.add_documents(small_kb.chunks[:10], small_kb.vectors[:10])
        backup.export_collection(store.client, "kb", tmp_path / "bk", progress=False)
    finally:
        store.close()
    with gzip.open(tmp_path / "bk" / backup.ROWS, "rt") as fh:
        rows = [json.loads(line) for line in fh]
    assert sorted(r["id"] for r in rows) == sorted(c.id for c in small_kb.chunks[:10])
    assert all(len(r["embedding"]) == 384 for r in rows)


def test_a_lite_backup_restores_into_any_milvus(tmp_path, milvus_uri, collection_name, small_kb):
    """Lite's describe_index records no build parameters; a server needs them."""
    source = MilvusStore(str(tmp_path / "source.db"), "kb")
    try:
        source.add_documents(small_kb.chunks, small_kb.vectors)
        backup.export_collection(source.client, "kb", tmp_path / "bk", progress=False)
    finally:
        source.close()
    target = MilvusStore(milvus_uri, collection_name)  # opens the client; the collection is replaced
    try:
        target.client.drop_collection(collection_name)
        assert backup.import_collection(target.client, tmp_path / "bk", collection_name,
                                        progress=False) == len(small_kb.chunks)
        hits = target.search(small_kb.vectors[:10], k=1)
        assert [h[0].id for h in hits] == [c.id for c in small_kb.chunks[:10]]
    finally:
        if target.mode == "server":
            target.client.drop_collection(collection_name)
        target.close()
