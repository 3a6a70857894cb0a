import gzip
import json

import pytest

from helpers import corpus
from helpers.errors import CorpusError

SAMPLE = """\
:tocdepth: 2

===========
Sample FAQ
===========

.. contents::

.. _label:

How do I copy a list?
---------------------

Use :func:`copy.copy` or ``list[:]``; see `the docs <https://docs.python.org>`_.
The :mod:`long role spanning
lines <copy>` works too.

.. index:: single: hidden

   This index body is dropped.

Why is the sky blue?
--------------------

Because of :ref:`Rayleigh <rayleigh>` scattering::

    print("code kept")
"""


def test_rst_to_text_strips_markup_and_keeps_headings():
    text, headings = corpus.rst_to_text(SAMPLE)
    assert "copy.copy" in text and "list[:]" in text and "the docs" in text
    assert "long role spanning\nlines" in text
    for markup in (":func:", "``", "<https", ".. ", ":tocdepth:", "hidden", "-----"):
        assert markup not in text
    assert 'print("code kept")' in text and "scattering:" in text
    assert [h[0] for h in headings] == ["Sample FAQ", "How do I copy a list?", "Why is the sky blue?"]
    for title, _, offset in headings:
        assert text[offset:offset + len(title)] == title


def test_build_from_sources_round_trip(tmp_path):
    src = tmp_path / "_sources" / "faq"
    src.mkdir(parents=True)
    (src / "sample.rst.txt").write_text(SAMPLE)
    out = tmp_path / "corpus.jsonl.gz"
    assert corpus.main(["build", "--sources", str(tmp_path / "_sources"), "--out", str(out)]) == 0
    docs = corpus.load_documents(out)
    assert [d.doc_id for d in docs] == ["faq/sample"]
    qs = corpus.faq_questions(docs)
    assert [q.question for q in qs] == ["How do I copy a list?", "Why is the sky blue?"]
    answer = docs[0].text[qs[0].start:qs[0].end]
    assert "copy.copy" in answer and "sky" not in answer
    with gzip.open(out, "rt") as fh:
        assert json.loads(fh.readline())["title"] == "Sample FAQ"


def test_committed_corpus_has_the_faq():
    docs = corpus.load_documents()
    assert len(docs) > 450
    assert docs[0].doc_id.startswith("faq/")  # the knowledge base takes the FAQ first
    qs = corpus.faq_questions(docs)
    assert 160 <= len(qs) <= 200
    assert all(q.question.endswith("?") and q.end > q.start for q in qs)


def test_chunks_respect_size_and_keep_provenance():
    doc = next(d for d in corpus.load_documents() if d.doc_id == "faq/programming")
    chunks = corpus.chunk_document(doc, size=500, overlap=80)
    assert len(chunks) > 20
    assert all(len(c.text) <= 500 for c in chunks)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.doc_id == doc.doc_id and c.id == f"{doc.doc_id}#{c.position}"
        assert doc.text[c.start:c.end] == c.text
    # Consecutive chunks overlap (a sentence cut at a border is whole in one of them) ...
    assert sum(b.start < a.end for a, b in zip(chunks, chunks[1:])) > len(chunks) // 2
    # ... and together they cover every paragraph of the document.
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(doc.text) if not ch.isspace())


def test_no_overlap_means_disjoint_chunks():
    doc = corpus.load_documents()[0]
    chunks = corpus.chunk_document(doc, size=400, overlap=0)
    assert all(b.start >= a.end for a, b in zip(chunks, chunks[1:]))


def test_chunk_corpus_stops_at_max_and_questions_have_answers():
    docs = corpus.load_documents()
    chunks = corpus.chunk_corpus(docs, 800, 100, max_chunks=300)
    assert len(chunks) == 300
    qs = corpus.question_set(chunks, docs)
    assert len(qs.questions) > 150  # the whole FAQ fits in the first 300 chunks
    for q in qs.questions:
        assert qs.relevant[q.qid] and all(i.startswith(q.doc_id + "#") for i in qs.relevant[q.qid])


@pytest.mark.parametrize("size, overlap, words", [(10, 0, "too small"), (400, 300, "half")])
def test_bad_chunk_parameters(size, overlap, words):
    with pytest.raises(CorpusError, match=words):
        corpus.chunk_document(corpus.load_documents()[0], size, overlap)


def test_missing_or_empty_corpus_file(tmp_path):
    with pytest.raises(CorpusError, match="git checkout data/corpus"):
        corpus.load_documents(tmp_path / "nope.jsonl.gz")
    empty = tmp_path / "empty.jsonl.gz"
    with gzip.open(empty, "wt") as fh:
        fh.write("")
    with pytest.raises(CorpusError, match="no documents"):
        corpus.load_documents(empty)
    with pytest.raises(CorpusError, match="no chunks"):
        corpus.chunk_corpus([], 800, 100)
