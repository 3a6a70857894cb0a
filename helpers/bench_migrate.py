"""Benchmark the migration against its two halves, on one Chroma collection, in one run.

    python -m helpers.bench_migrate --records 50000 [--chroma-path DIR] [--milvus-uri URI]

Three timings on the same collection: **export alone** (read every page from Chroma, vectors
cast to float32, nothing written), **insert alone** (the same rows, already in memory, upserted
into a fresh Milvus collection and flushed), and the **full migration** (``helpers.migrate``:
preflight pass, paged reads, upserts, checkpoints, flush; its verification timed apart). The
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
from .migrate import METRICS, Mirror, migrate, open_source, pages, verify, write_rows
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


def insert_alone(chroma_path: str | Path | None, collection: str, milvus_uri: str | None,
                 target: str, batch_size: int = 1000) -> float:
    """Seconds to upsert the collection's rows (read beforehand, untimed) into a fresh target."""
    source = open_source(chroma_path, collection)
    records = [r for _, page in pages(source, batch_size) for r in page]
    mirror = Mirror(records[0].embedding.size, METRICS[chroma_space(source)])
    rows = [mirror.to_row(r) for r in records]
    with milvus_client(milvus_uri) as client:
        if client.has_collection(target):
            client.drop_collection(target)
        mirror.create(client, target)
        start = time.perf_counter()
        for i in range(0, len(rows), batch_size):
            write_rows(client, target, rows[i:i + batch_size], mirror)
        client.flush(target)
        seconds = time.perf_counter() - start
        client.drop_collection(target)
    return seconds


def benchmark(chroma_path: str | Path | None, collection: str, milvus_uri: str | None = None,
              batch_size: int = 1000, progress: bool = True) -> tuple[pd.DataFrame, Any]:
    """Time export alone, insert alone, the migration and its verification; return the table and
    the migration's report."""
    n = open_source(chroma_path, collection).count()
    export_s = export_alone(chroma_path, collection, batch_size)
    insert_s = insert_alone(chroma_path, collection, milvus_uri, f"{collection}_insert_only", batch_size)
    report = migrate(chroma_path, collection, milvus_uri, f"{collection}_migrated", batch_size,
                     restart=True, verify_after=False, progress=progress)
    check = verify(chroma_path, collection, milvus_uri, f"{collection}_migrated", batch_size,
                   progress=progress)
    report.verification = check
    slower = max(export_s, insert_s)
    table = pd.DataFrame({
        "step": ["Chroma export alone", "Milvus insert alone", "full migration", "verification"],
        "seconds": [export_s, insert_s, report.seconds, check.seconds],
    })
    table["records/s"] = n / table["seconds"]
    table["vs slower half"] = slower / table["seconds"]
    table.loc[3, "vs slower half"] = float("nan")  # verification is not part of the comparison
    return table.set_index("step").round({"seconds": 2, "records/s": 0, "vs slower half": 2}), report


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
    args = p.parse_args(argv)
    name = source_collection(knowledge_base(args.kb_chunks), args.records, args.chroma_path)
    table, report = benchmark(args.chroma_path, name, args.milvus_uri, args.batch_size)
    print(table.to_string())
    ratio = table.loc["full migration", "vs slower half"]
    print(f"\nmigration at {ratio:.0%} of the slower half (goal ≥ {GOAL:.0%}); {report.verification}")
    return 0 if report.verification.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
