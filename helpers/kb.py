"""The knowledge base: corpus → chunks → embeddings (cached) → both stores.

Every notebook that needs the knowledge base calls ``knowledge_base`` (chunks, vectors,
questions) and, where it needs the stores filled, ``build_stores``. Both are idempotent:
a second call computes nothing new and leaves the stores as they were asked to be.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import config
from .corpus import Chunk, QuestionSet, chunk_corpus, load_documents, question_set
from .embed import embed
from .stores import ChromaStore, MilvusStore

CHUNK_SIZE = 800
CHUNK_OVERLAP = 100


@dataclass
class KnowledgeBase:
    """The real chunks of the corpus, their embeddings, and the FAQ questions they answer."""

    chunks: list[Chunk]
    vectors: np.ndarray
    questions: QuestionSet
    question_vectors: np.ndarray

    def relevant(self, i: int) -> set[str]:
        """Ids of the chunks relevant to question ``i``."""
        return self.questions.relevant[self.questions.questions[i].qid]


def knowledge_base(max_chunks: int, chunk_size: int = CHUNK_SIZE, overlap: int = CHUNK_OVERLAP,
                   cache: str | Path | None = None, progress: bool = True) -> KnowledgeBase:
    """Chunk the corpus (FAQ first) up to ``max_chunks`` and embed chunks and questions."""
    docs = load_documents()
    chunks = chunk_corpus(docs, chunk_size, overlap, max_chunks)
    vectors = embed([c.text for c in chunks], cache=cache, progress=progress)
    qs = question_set(chunks, docs)
    qvecs = embed(qs.texts(), cache=cache, progress=progress)
    return KnowledgeBase(chunks, vectors, qs, qvecs)


def build_stores(kb: KnowledgeBase, chroma_path: str | Path | None = None,
                 milvus_uri: str | None = None, collection: str = config.KB_COLLECTION,
                 reset: bool = True) -> tuple[ChromaStore, MilvusStore]:
    """Load the knowledge base into Chroma and Milvus, from empty collections when ``reset``."""
    chroma = ChromaStore(chroma_path, collection)
    milvus = MilvusStore(milvus_uri, collection)
    for store in (chroma, milvus):
        if reset:
            store.reset()
        store.add_documents(kb.chunks, kb.vectors)
    return chroma, milvus
