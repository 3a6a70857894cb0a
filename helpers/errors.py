"""The kit's exceptions: one clear sentence saying what is wrong and what to do.

Every error a learner can cause is raised at the helper boundary as a subclass of
``KitError``, so a notebook shows one readable line instead of a stack trace from
deep inside a client library.
"""

from __future__ import annotations


class KitError(Exception):
    """Base class: the message says what is wrong and what to do next."""


class ConfigError(KitError):
    """A setting (environment variable, URI, path) is invalid."""


class ModelNotFoundError(KitError):
    """The packaged embedding model cannot be found or loaded."""


class CorpusError(KitError):
    """The corpus or the texts given to embed/chunk are unusable."""


class StoreError(KitError):
    """A vector store is unreachable, missing a collection, or refused data."""


class DataError(StoreError):
    """Records that cannot be stored without loss (dimension, NaN, over-long text)."""
