"""Where things live and how big a run is. The only module that reads the environment.

- ``MILVUS_URI``: a Milvus server (``http://localhost:19530``). pymilvus itself reads this
  variable when it is imported and accepts only a server address there.
- ``MILVUS_LITE_PATH``: another Milvus Lite file (a path ending in ``.db``) when no server is
  named. Default: ``data/milvus_kit.db``, the embedded default.
- ``CHROMA_PATH``: the folder of Chroma's persistent client. Default: ``data/chroma``.
- ``KIT_CACHE_DIR``: the embedding cache. Default: ``data/cache``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"
CORPUS_FILE = DATA_DIR / "corpus" / "python-docs-3.11.jsonl.gz"
NOTEBOOKS_DIR = ROOT / "notebooks"

DEFAULT_MILVUS_URI = str(DATA_DIR / "milvus_kit.db")
DEFAULT_CHROMA_PATH = DATA_DIR / "chroma"
DEFAULT_CACHE_DIR = DATA_DIR / "cache"
KB_COLLECTION = "knowledge_base"

_SERVER_SCHEMES = ("http://", "https://", "tcp://", "unix:")


@dataclass(frozen=True)
class Scale:
    """How much work a notebook does: real chunks embedded, synthetic rows, queries."""

    name: str
    kb_chunks: int
    synthetic_rows: int
    queries: int


SCALES: dict[str, Scale] = {
    # The tests' scale: seconds per notebook, every code path still taken.
    "smoke": Scale("smoke", kb_chunks=300, synthetic_rows=5_000, queries=50),
    # The walkthrough's scale: a few thousand real chunks, the guide's 50k for speed figures.
    "full": Scale("full", kb_chunks=2_000, synthetic_rows=50_000, queries=200),
}


def scale(name: str) -> Scale:
    """Return the scale preset called ``name`` ("smoke" or "full")."""
    try:
        return SCALES[name]
    except KeyError:
        raise ConfigError(
            f"Unknown scale {name!r}: use one of {', '.join(SCALES)}."
        ) from None


def milvus_uri(uri: str | None = None) -> str:
    """The Milvus URI: ``uri`` if given, else ``$MILVUS_URI`` (a server), else the Lite file."""
    env = os.environ.get("MILVUS_URI")
    if not uri and env and not env.startswith(_SERVER_SCHEMES):
        raise ConfigError(
            f"MILVUS_URI={env!r} is not a server address, and pymilvus reads this variable itself: "
            "set it to http://host:19530, or unset it and set MILVUS_LITE_PATH for a Lite file.")
    value = uri or env or os.environ.get("MILVUS_LITE_PATH") or DEFAULT_MILVUS_URI
    return check_milvus_uri(value)


def check_milvus_uri(uri: str) -> str:
    """Validate a Milvus URI, raising ConfigError with what to write instead."""
    if uri.startswith(_SERVER_SCHEMES):
        return uri
    if "://" in uri:
        raise ConfigError(
            f"MILVUS_URI {uri!r} has an unknown scheme: use a Milvus Lite file ending in "
            "'.db' (e.g. data/milvus_kit.db) or a server address like http://localhost:19530."
        )
    if not uri.endswith(".db"):
        raise ConfigError(
            f"MILVUS_URI {uri!r} is neither a server address nor a Milvus Lite file: "
            "a Lite file name must end in '.db' (e.g. data/milvus_kit.db)."
        )
    return str(Path(uri).expanduser().resolve())


def chosen_milvus_uri(uri: str | None = None) -> str | None:
    """The Milvus someone chose: ``uri``, ``$MILVUS_URI`` or ``$MILVUS_LITE_PATH`` (as
    ``milvus_uri`` reads them), or None when nobody chose one (a notebook may then start a server)."""
    if uri or os.environ.get("MILVUS_URI") or os.environ.get("MILVUS_LITE_PATH"):
        return milvus_uri(uri)
    return None


def is_lite(uri: str) -> bool:
    """True when ``uri`` names a Milvus Lite file rather than a server."""
    return not uri.startswith(_SERVER_SCHEMES)


def shown(location: str | Path) -> str:
    """A path as notebooks print it: relative to the kit's folder when inside it (the same in
    every checkout), else as given; a server address unchanged."""
    text = str(location)
    if not is_lite(text):
        return text
    path = Path(text).expanduser().resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def chroma_path(path: str | Path | None = None) -> Path:
    """The Chroma folder: ``path`` if given, else ``$CHROMA_PATH``, else ``data/chroma``."""
    return Path(path or os.environ.get("CHROMA_PATH") or DEFAULT_CHROMA_PATH).expanduser().resolve()


def cache_dir(path: str | Path | None = None) -> Path:
    """The embedding-cache folder: ``path``, else ``$KIT_CACHE_DIR``, else ``data/cache``."""
    return Path(path or os.environ.get("KIT_CACHE_DIR") or DEFAULT_CACHE_DIR).expanduser().resolve()
