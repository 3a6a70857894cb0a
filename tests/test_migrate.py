"""The migration: lossless on tricky data, resumable after SIGKILL, refusing what it would lose,
and a verification that notices a record changed after the copy.

Real Chroma and real Milvus Lite in temporary folders; the server tests run against a real
Milvus 2.3.5 server (helpers.server) and are skipped where its binaries are unusable.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import chromadb
import numpy as np
import pytest

from helpers.migrate import (MAX_VARCHAR_BYTES, STATE_COLLECTION, Mirror, Policy, PreflightError,
                             Record, Spool, interrupted_run, load_state, main, migrate,
                             preflight, truncate_utf8, verify)
from helpers.stores import milvus_client

REPO = Path(__file__).resolve().parents[1]
LONG_ID = "é-ü-✓ " + "x" * 600
TRICKY_IDS = [LONG_ID, 'quote"and\\backslash', "tab\tand\nnewline", "emoji 🎉 日本語", "plain"]


def _canonical(value):
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _client(path: Path):
    return chromadb.PersistentClient(path=str(path))


def _tricky(path: Path) -> dict[str, dict[str, Record]]:
    """Three collections with different spaces and awkward records, edited after insertion."""
    client = _client(path)
    rng = np.random.default_rng(7)
    tricky = client.create_collection("tricky", embedding_function=None,
                                      configuration={"hnsw": {"space": "cosine"}})
    docs = ["ünïcödé ✓ text", None, "", "a\x00b and \u2028", "plain"]
    metas = [{"flag": True, "one": 1, "one_f": 1.0, "tags": ["a", "b"], "nums": [1, 2, 3],
              "floats": [0.5, 1.0], "bools": [True, False], "empty": "", "uni": "日本"},
             None, {"zero": 0, "false": False}, {"big": 2**62, "neg": -1.5e-300}, None]
    tricky.add(ids=TRICKY_IDS, embeddings=rng.normal(size=(5, 8)), documents=docs, metadatas=metas)
    tricky.add(ids=[f"r{i:03d}" for i in range(40)], embeddings=rng.normal(size=(40, 8)),
               documents=[f"doc {i}" for i in range(40)], metadatas=[{"i": i} for i in range(40)])
    tricky.update(ids=["plain"], embeddings=rng.normal(size=(1, 8)), documents=["updated"],
                  metadatas=[{"edited": True}])
    tricky.delete(ids=["r005", "r006"])
    tricky.add(ids=["r005"], embeddings=rng.normal(size=(1, 8)), documents=["re-added"])
    second = client.create_collection("second.l2", embedding_function=None,
                                      configuration={"hnsw": {"space": "l2"}})
    second.add(ids=[f"s{i}" for i in range(12)], embeddings=rng.normal(size=(12, 4)))
    third = client.create_collection("third-ip", embedding_function=None, metadata={"hnsw:space": "ip"})
    third.add(ids=[f"t{i}" for i in range(12)], embeddings=rng.normal(size=(12, 3)),
              documents=[f"t{i}" for i in range(12)])
    client.create_collection("empty_one", embedding_function=None)
    return {c.name: _records(c) for c in (tricky, second, third)}


def _records(col) -> dict[str, Record]:
    res = col.get(include=["embeddings", "documents", "metadatas"])
    return {i: Record(i, np.asarray(v, np.float32), d, m)
            for i, v, d, m in zip(res["ids"], res["embeddings"], res["documents"], res["metadatas"])}


def _milvus_records(uri: str, target: str) -> dict[str, Record]:
    with milvus_client(uri) as client:
        dim = next(f["params"]["dim"] for f in client.describe_collection(target)["fields"]
                   if f["name"] == "embedding")
        client.load_collection(target)
        rows = client.query(target, filter="", output_fields=["*"], limit=16_384)
        assert len(rows) == len({r["id"] for r in rows}), "no primary key twice"
        mirror = Mirror(int(dim), "COSINE")
        return {r["id"]: mirror.from_row(r) for r in rows}


def _metric(uri: str, target: str) -> str:
    with milvus_client(uri) as client:
        return client.describe_index(target, "embedding")["metric_type"]


def _assert_same(source: dict[str, Record], copied: dict[str, Record]) -> None:
    assert copied.keys() == source.keys()
    for rid, want in source.items():
        got = copied[rid]
        assert np.array_equal(got.embedding, want.embedding), rid
        assert got.document == want.document and type(got.document) is type(want.document), rid
        assert _canonical(got.metadata) == _canonical(want.metadata), rid


def _cli(*args: str) -> int:
    return main([*args, "--no-progress"])


@pytest.fixture
def tricky(tmp_path):
    chroma = tmp_path / "chroma"
    return chroma, _tricky(chroma), str(tmp_path / "milvus.db")


# --------------------------------------------------------------------------- lossless
def test_every_collection_round_trips_losslessly(tricky, capsys):
    chroma, source, uri = tricky
    assert _cli("--chroma-path", str(chroma), "--all", "--milvus-uri", uri, "--batch-size", "7") == 0
    out = capsys.readouterr().out
    assert out.count("verification OK") == 3
    for name, target, metric in [("tricky", "tricky", "COSINE"), ("second.l2", "second_l2", "L2"),
                                 ("third-ip", "third_ip", "IP")]:
        _assert_same(source[name], _milvus_records(uri, target))
        assert _metric(uri, target) == metric
    copied = _milvus_records(uri, "tricky")
    no_doc = copied['quote"and\\backslash']
    assert no_doc.document is None and no_doc.metadata is None
    assert copied["tab\tand\nnewline"].document == "" and copied[LONG_ID].metadata["flag"] is True
    assert copied["plain"].metadata == {"edited": True} and copied["plain"].document == "updated"
    assert copied["r005"].document == "re-added" and "r006" not in copied
    with milvus_client(uri) as client:
        assert not client.has_collection("empty_one"), "an empty collection creates nothing"


def test_running_again_writes_nothing_and_duplicates_nothing(tricky):
    chroma, source, uri = tricky
    first = migrate(chroma, "tricky", uri, progress=False)
    again = migrate(chroma, "tricky", uri, progress=False)
    assert first.written == len(source["tricky"]) and first.verification.ok
    assert again.read == again.written == 0 and again.resumed_from == len(source["tricky"])
    assert again.verification.ok and again.verification.target_rows == len(source["tricky"])


# --------------------------------------------------------------------------- resume
def _big_source(path: Path, n: int = 3000, dim: int = 16) -> None:
    col = _client(path).create_collection("big", embedding_function=None,
                                          configuration={"hnsw": {"space": "cosine"}})
    rng = np.random.default_rng(3)
    for i in range(0, n, 1000):
        col.add(ids=[f"id-{j:05d}" for j in range(i, i + 1000)], embeddings=rng.normal(size=(1000, dim)),
                documents=[f"doc {j}" for j in range(i, i + 1000)],
                metadatas=[{"j": j, "even": j % 2 == 0} for j in range(i, i + 1000)])


def _kill_and_resume(tmp_path: Path, uri: str) -> None:
    chroma = tmp_path / "chroma"
    _big_source(chroma)
    args = ["--chroma-path", str(chroma), "--collection", "big", "--milvus-uri", uri,
            "--batch-size", "100", "--max-rate", "1500"]
    assert interrupted_run(args, 600) == -signal.SIGKILL
    with milvus_client(uri) as client:
        stopped_at = load_state(client, "big")["offset"]
    assert 0 < stopped_at < 3000, "killed in the middle"
    done = subprocess.run([sys.executable, "-m", "helpers.migrate", *args[:-2], "--no-progress"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resumed at offset {stopped_at:,}" in done.stdout and "verification OK" in done.stdout
    copied = _milvus_records(uri, "big")
    assert sorted(copied) == [f"id-{j:05d}" for j in range(3000)]
    with milvus_client(uri) as client:
        rows = client.query("big", filter="", output_fields=["count(*)"], consistency_level="Strong")
        assert rows[0]["count(*)"] == 3000, "every record exactly once"


def test_killed_migration_resumes_without_gaps_or_duplicates(tmp_path):
    _kill_and_resume(tmp_path, str(tmp_path / "milvus.db"))


# --------------------------------------------------------------------------- preflight
def _one_bad(path: Path, **bad) -> None:
    col = _client(path).create_collection("with_bad", embedding_function=None)
    rng = np.random.default_rng(1)
    col.add(ids=[f"ok{i}" for i in range(5)], embeddings=rng.normal(size=(5, 4)),
            documents=[f"doc {i}" for i in range(5)])
    col.add(ids=["bad-one"], embeddings=rng.normal(size=(1, 4)), **bad)


def _nothing_written(uri: str) -> bool:
    with milvus_client(uri) as client:
        return not client.has_collection("with_bad") and not client.has_collection(STATE_COLLECTION)


def test_preflight_refuses_a_too_long_document_then_truncates_or_skips_it(tmp_path, capsys):
    chroma, uri = tmp_path / "chroma", str(tmp_path / "m.db")
    long_doc = "é" * 40_000  # 80,000 bytes of UTF-8
    _one_bad(chroma, documents=[long_doc])
    base = ["--chroma-path", str(chroma), "--collection", "with_bad", "--milvus-uri", uri]
    assert _cli(*base) == 2
    err = capsys.readouterr().err
    assert "'bad-one' (document of 80,000 bytes)" in err and "--on-long-document" in err
    assert _nothing_written(uri)

    assert _cli(*base, "--on-long-document", "truncate") == 0
    assert "truncated 1" in capsys.readouterr().out
    doc = _milvus_records(uri, "with_bad")["bad-one"].document
    assert doc == long_doc[:MAX_VARCHAR_BYTES // 2] and len(doc.encode()) <= MAX_VARCHAR_BYTES

    assert _cli(*base, "--on-long-document", "skip", "--restart") == 0
    assert "skipped 1 long_document" in capsys.readouterr().out
    assert sorted(_milvus_records(uri, "with_bad")) == [f"ok{i}" for i in range(5)]


def test_preflight_refuses_metadata_the_target_cannot_hold(tmp_path, capsys):
    chroma, uri = tmp_path / "chroma", str(tmp_path / "m.db")
    _one_bad(chroma, metadatas=[{"blob": "x" * 70_000}])
    base = ["--chroma-path", str(chroma), "--collection", "with_bad", "--milvus-uri", uri]
    assert _cli(*base) == 2
    err = capsys.readouterr().err
    assert "'bad-one'" in err and "65,536" in err and "--on-unstorable skip" in err
    assert _nothing_written(uri)
    assert _cli(*base, "--on-unstorable", "skip") == 0
    assert "bad-one" not in _milvus_records(uri, "with_bad")


def test_preflight_refuses_nan_and_mixed_dimensions():
    # Chroma 1.5.9 itself refuses NaN and a second dimension on insert, so such records come
    # only from older stores or other exports: the check is exercised on records directly.
    rng = np.random.default_rng(0)
    good = [Record(f"g{i}", rng.normal(size=4).astype(np.float32)) for i in range(3)]
    nan = Record("has-nan", np.array([0.1, np.nan, 0.2, 0.3], np.float32))
    short = Record("three-dims", np.ones(3, np.float32))
    mirror = Mirror(4, "COSINE")
    with pytest.raises(PreflightError) as exc:
        preflight([good, [nan, short]], mirror, Policy())
    msg = str(exc.value)
    assert "'has-nan' (NaN or infinite component)" in msg and "'three-dims' (3 dimensions, not 4)" in msg
    assert "--on-bad-vector skip" in msg and msg.startswith("Nothing was written.")
    result = preflight([good, [nan, short]], mirror, Policy(bad_vector="skip"))
    assert result.actions["skip", "bad_vector"] == 2 and result.actions["write", ""] == 3


def test_the_spool_keeps_what_preflight_decided_from_the_resume_point_on():
    rng = np.random.default_rng(1)
    records = [Record(f"r{i}", rng.normal(size=4).astype(np.float32), f"doc {i}") for i in range(7)]
    records[5] = Record("has-nan", np.array([np.nan, 0, 0, 0], np.float32))
    pages = [records[0:3], records[3:6], records[6:7]]  # a resume at offset 4, inside page two
    with Spool() as spool:
        preflight(pages, Mirror(4, "COSINE"), Policy(bad_vector="skip"), spool, start=4)
        kept = list(spool)
    assert [end for end, _ in kept] == [6, 7]  # the Chroma offset after each page
    decided = [d for _, page in kept for d in page]
    assert [row["id"] if row else None for _, _, row in decided] == ["r4", None, "r6"]
    assert [(action, problem) for action, problem, _ in decided] == [
        ("write", ""), ("skip", "bad_vector"), ("write", "")]
    np.testing.assert_array_equal(decided[0][2]["embedding"], records[4].embedding)


def test_an_unknown_option_value_is_refused_in_one_sentence():
    with pytest.raises(Exception, match="is not an option: use one of fail, truncate, skip"):
        Policy(long_document="drop")


def test_truncation_never_splits_a_character():
    assert truncate_utf8("aé", 2) == "a" and truncate_utf8("aé", 3) == "aé"


def test_a_target_made_by_someone_else_is_not_overwritten(tricky, capsys):
    chroma, _, uri = tricky
    with milvus_client(uri) as client:
        client.create_collection("tricky", dimension=8)
    args = ["--chroma-path", str(chroma), "--collection", "tricky", "--milvus-uri", uri]
    assert _cli(*args) == 2
    assert "did not make" in capsys.readouterr().err
    assert _cli(*args, "--restart") == 0


# --------------------------------------------------------------------------- verification
def test_verification_names_records_altered_after_migration(tricky, capsys):
    chroma, source, uri = tricky
    assert migrate(chroma, "tricky", uri, progress=False).verification.ok
    recs = source["tricky"]
    mirror = Mirror(8, "COSINE")
    with milvus_client(uri) as client:
        doc = mirror.to_row(Record("r001", recs["r001"].embedding, "changed", recs["r001"].metadata))
        meta = mirror.to_row(Record("r002", recs["r002"].embedding, recs["r002"].document, {"i": 2.0}))
        vec = mirror.to_row(Record("r003", recs["r003"].embedding + 1e-3, recs["r003"].document,
                                   recs["r003"].metadata))
        extra = mirror.to_row(Record("not-in-chroma", recs["r004"].embedding, None, None))
        client.upsert("tricky", [doc, meta, vec, extra])
        client.delete("tricky", filter='id == "r007"')
    report = verify(chroma, "tricky", uri, progress=False)
    assert not report.ok
    diff = report.diff()
    for line in ["'r001' from character 0: …'doc 1' in Chroma, …'changed' in Milvus", "'r002': {\"i\": 2} in Chroma, "
                 "{\"i\": 2.0} in Milvus", "vector differs (1):\n  'r003'", "missing in Milvus (1):\n  'r007'",
                 "extra in Milvus (1):\n  'not-in-chroma'"]:
        assert line in diff
    assert _cli("--chroma-path", str(chroma), "--collection", "tricky", "--milvus-uri", uri,
                "--verify-only") == 1
    assert "verification FAILED" in capsys.readouterr().out


# --------------------------------------------------------------------------- server
@pytest.fixture
def server_uri(milvus_server) -> str:
    """The session's local Milvus server (tests/conftest.py; skipped where it cannot run)."""
    return milvus_server.uri


def test_server_round_trip_and_resume_exactly_once(server_uri, tmp_path):
    """A server keeps both rows when a key is inserted twice: only a server proves exactly-once."""
    chroma = tmp_path / "tricky"
    source = _tricky(chroma)
    assert _cli("--chroma-path", str(chroma), "--all", "--milvus-uri", server_uri, "--restart") == 0
    for name, target in [("tricky", "tricky"), ("second.l2", "second_l2"), ("third-ip", "third_ip")]:
        _assert_same(source[name], _milvus_records(server_uri, target))
    _kill_and_resume(tmp_path, server_uri)


def test_server_verification_counts_a_duplicated_key(server_uri, tmp_path):
    chroma = tmp_path / "tricky"
    source = _tricky(chroma)
    assert migrate(chroma, "tricky", server_uri, target="dups", progress=False).verification.ok
    rec = source["tricky"]["r010"]
    with milvus_client(server_uri) as client:
        client.insert("dups", [Mirror(8, "COSINE").to_row(rec)])  # insert, not upsert: a second row
    report = verify(chroma, "tricky", server_uri, target="dups", progress=False)
    assert not report.ok and report.checks["duplicated primary keys"].count == 1


def test_a_proposed_schema_with_a_partition_key_migrates_losslessly(tmp_path, small_kb, milvus_uri,
                                                                    collection_name):
    """--schema FILE: a typed schema (issue 3's proposal) instead of the mirror, tenants as the
    partition key; on a server this path must not upsert (it misplaces partition-key rows)."""
    from helpers.schema import fill_chroma, tenant_metadata
    from helpers.schema import main as schema_main

    chroma = tmp_path / "kb"
    col = _client(chroma).create_collection("kb_tenants", embedding_function=None,
                                            configuration={"hnsw": {"space": "cosine"}})
    fill_chroma(col, small_kb.chunks, small_kb.vectors, [tenant_metadata(c, 4) for c in small_kb.chunks])
    target = "server" if milvus_uri.startswith("http") else "lite"
    proposal = tmp_path / "schema.json"
    assert schema_main(["propose", "--chroma-path", str(chroma), "--collection", "kb_tenants",
                        "--target", target, "--partition-key", "tenant", "--out", str(proposal)]) == 0
    args = ["--chroma-path", str(chroma), "--collection", "kb_tenants", "--milvus-uri", milvus_uri,
            "--target-collection", collection_name, "--schema", str(proposal), "--no-progress"]
    assert main(args) == 0
    assert main(args) == 0  # a second run replaces, never duplicates
    with milvus_client(milvus_uri) as client:
        client.load_collection(collection_name)  # a reopened Lite collection starts released
        tenant = tenant_metadata(small_kb.chunks[0], 4)["tenant"]
        rows = client.query(collection_name, filter=f'tenant == "{tenant}"', output_fields=["id"])
        expected = {c.id for c in small_kb.chunks if tenant_metadata(c, 4)["tenant"] == tenant}
        assert {r["id"] for r in rows} == expected
        client.drop_collection(collection_name)
