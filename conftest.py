"""Which committed notebooks nbval re-runs in `make test`.

nbval re-executes a notebook at its committed (walkthrough) scale. The benchmark chapters
(guide-scale collections in three stores, index sweeps) take minutes each at that scale, more
than CI's 20-minute budget for the whole suite allows; they opt out in their metadata
(``"kit": {"nbval_in_make_test": false, "why": "..."}``) and still run in `make test` at small
scale through papermill (tests/test_notebooks.py). `make test-notebooks` (pytest
``--all-notebooks``) re-runs and compares every committed notebook.
"""

from __future__ import annotations

import json
from pathlib import Path


def pytest_addoption(parser):
    parser.addoption("--all-notebooks", action="store_true",
                     help="nbval every committed notebook, the benchmark chapters included")


def nbval_in_make_test(path: Path) -> bool:
    """False when the notebook's metadata opts out of nbval in `make test`."""
    meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get("kit", {})
    return meta.get("nbval_in_make_test", True)


def pytest_ignore_collect(collection_path: Path, config):
    if collection_path.suffix != ".ipynb" or config.getoption("--all-notebooks"):
        return None
    return True if not nbval_in_make_test(collection_path) else None
