"""Benchmark the migration against its two halves, on one Chroma collection, in one run.

    python -m helpers.bench_migrate --records 50000 [--chroma-path DIR] [--milvus-uri URI]

Three timings on the same collection: **export alone** (read every page from Chroma, vectors
cast to float32, nothing written), **insert alone** (the same rows, already in memory: create
the Milvus collection, upsert, flush, as any load must), and the **full migration**
(``helpers.migrate``: preflight pass into a spool, upserts, checkpoints, flush; its verification
timed apart). The three run interleaved, ``--repeats`` rounds, and each step's best time counts:
on a shared machine, noise only ever adds time (±20% between runs here). The
migration cannot beat the slower half; the goal is at least 70% of that half's records/s.

The source collection holds the knowledge base's real chunks followed by labelled synthetic ones
(``helpers.synthetic``: ids ``syn-…``) up to ``records``. Building it costs Chroma about a second
per 1,300 records, so it is kept in the Chroma folder as ``bench_<records>`` and rebuilt only
when its size differs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pandas as pd

from . import config
from .kb import KnowledgeBase, knowledge_base
from .migrate import METRICS, Mirror, drop_target, migrate, open_source, pages, verify, write_rows
from .schema import chroma_space
from .stores import CHROMA_MAX_BATCH, ChromaStore, milvus_client
from .synthetic import scaled_knowledge_base

GOAL = 0.7  # the migration's records/s as a share of the slower half's


def source_collection(kb: KnowledgeBase, records: int, chroma_path: str | Path | None = None,
                      progress: bool = True) -> str:
    """The name of a Chroma collection of ``records`` records (real + synthetic), built if needed."""
    name = f"bench_{records}"
    store = ChromaStore(chroma_path, name)
    if store.count() != records:
        store.reset()
        chunks, vectors = scaled_knowledge_base(kb, records)
        steps = range(0, records, CHROMA_MAX_BATCH)
        if progress:
            from tqdm import tqdm

            steps = tqdm(steps, desc=f"build Chroma {name}", unit="batch")
        for i in steps:
            store.add_documents(chunks[i:i + CHROMA_MAX_BATCH], vectors[i:i + CHROMA_MAX_BATCH],
                                batch_size=CHROMA_MAX_BATCH)
    return name


def export_alone(chroma_path: str | Path | None, collection: str, batch_size: int = 1000) -> float:
    """Seconds to read every record of ``collection`` in pages (nothing kept, nothing written)."""
    source = open_source(chroma_path, collection)
    start = time.perf_counter()
    for _ in pages(source, batch_size):
        pass
    return time.perf_counter() - start


def insert_alone(rows: list[dict[str, Any]], mirror: Mirror, milvus_uri: str | None, target: str,
                 batch_size: int = 1000) -> float:
    """Seconds to create a fresh target, upsert ``rows`` (already in memory) and flush."""
    with milvus_client(milvus_uri) as client:
        if client.has_collection(target):
            client.drop_collection(target)
        start = time.perf_counter()
        mirror.create(client, target)
        for i in range(0, len(rows), batch_size):
            write_rows(client, target, rows[i:i + batch_size], mirror)
        client.flush(target)
        seconds = time.perf_counter() - start
        client.drop_collection(target)
    return seconds


def benchmark(chroma_path: str | Path | None, collection: str, milvus_uri: str | None = None,
              batch_size: int = 1000, repeats: int = 3,
              progress: bool = True) -> tuple[pd.DataFrame, Any]:
    """Time export alone, insert alone and the migration, interleaved, ``repeats`` times each (the
    best run counts: a shared machine only ever adds time), then the verification once; return
    the table and the last migration's report."""
    source = open_source(chroma_path, collection)
    records = [r for _, page in pages(source, batch_size) for r in page]  # read once, untimed
    mirror = Mirror(records[0].embedding.size, METRICS[chroma_space(source)])
    rows = [mirror.to_row(r) for r in records]
    n = len(rows)
    runs: dict[str, list[float]] = {"Chroma export alone": [], "Milvus insert alone": [],
                                    "full migration": []}
    steps = range(repeats)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc="benchmark rounds", unit="round")
    for _ in steps:
        runs["Chroma export alone"].append(export_alone(chroma_path, collection, batch_size))
        runs["Milvus insert alone"].append(insert_alone(rows, mirror, milvus_uri,
                                                        f"{collection}_insert_only", batch_size))
        with milvus_client(milvus_uri) as client:  # a fresh start, untimed as for insert alone
            drop_target(client, f"{collection}_migrated")
        report = migrate(chroma_path, collection, milvus_uri, f"{collection}_migrated", batch_size,
                         verify_after=False, progress=False)
        runs["full migration"].append(report.seconds)
    check = verify(chroma_path, collection, milvus_uri, f"{collection}_migrated", batch_size,
                   progress=progress)
    report.verification = check
    table = pd.DataFrame({"seconds": [min(t) for t in runs.values()] + [check.seconds],
                          "runs": [repeats] * len(runs) + [1]},
                         index=pd.Index([*runs, "verification"], name="step"))
    slower = max(table["seconds"].iloc[:2])
    table["records/s"] = n / table["seconds"]
    table["vs slower half"] = slower / table["seconds"]
    table.loc["verification", "vs slower half"] = float("nan")  # not part of the comparison
    return table.round({"seconds": 2, "records/s": 0, "vs slower half": 2}), report


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) the source collection, run the benchmark, print the table."""
    p = argparse.ArgumentParser(prog="python -m helpers.bench_migrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=config.scale("full").synthetic_rows)
    p.add_argument("--kb-chunks", type=int, default=config.scale("full").kb_chunks,
                   help="real chunks before the synthetic ones")
    p.add_argument("--chroma-path", help="default: $CHROMA_PATH or data/chroma")
    p.add_argument("--milvus-uri", help="default: $MILVUS_URI or data/milvus_kit.db")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3, help="rounds; the best of each step counts")
    args = p.parse_args(argv)
    name = source_collection(knowledge_base(args.kb_chunks), args.records, args.chroma_path)
    table, report = benchmark(args.chroma_path, name, args.milvus_uri, args.batch_size, args.repeats)
    print(table.to_string())
    ratio = table.loc["full migration", "vs slower half"]
    print(f"\nmigration at {ratio:.0%} of the slower half (goal ≥ {GOAL:.0%}); {report.verification}")
    return 0 if report.verification.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
