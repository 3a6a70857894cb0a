"""The corpus: the Python 3.11 documentation, its FAQ questions, and chunking.

The documentation's reST sources come from Debian's ``python3.11-doc`` package (PSF
licence, see ``data/README.md``). ``python -m helpers.corpus build --deb FILE`` turns them
into ``data/corpus/python-docs-3.11.jsonl.gz`` (committed, so no learner needs apt): one
JSON document a line with its id, title, plain text and section headings with their
character spans. The FAQ pages' question headings, with their answer sections, give
queries whose relevant passages are known.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

from . import config
from .errors import CorpusError

SOURCES_DIR = "usr/share/doc/python3.11/html/_sources"
# Documents the knowledge base takes first: the FAQ (it holds the questions' answers),
# then the tutorial, the how-tos and the library reference.
SECTION_ORDER = ("faq", "tutorial", "howto", "library", "reference", "using", "extending",
                 "c-api", "installing", "distributing", "install", "distutils", "whatsnew")


# ----------------------------------------------------------------------------- documents
@dataclass(frozen=True)
class Section:
    """A heading of a document and the character span of its body in ``Document.text``."""

    title: str
    level: int
    start: int
    end: int


@dataclass(frozen=True)
class Document:
    """One page of the documentation as plain text."""

    doc_id: str
    title: str
    text: str
    sections: tuple[Section, ...] = ()


@dataclass(frozen=True)
class Question:
    """An FAQ question and where its answer lies (document and character span)."""

    qid: str
    question: str
    doc_id: str
    start: int
    end: int


@dataclass(frozen=True)
class Chunk:
    """A piece of a document, with its source and position kept for citations and deletes."""

    id: str
    doc_id: str
    position: int
    text: str
    start: int
    end: int
    section: str = ""

    def metadata(self) -> dict[str, str | int]:
        """The metadata both stores keep beside the text."""
        return {"doc_id": self.doc_id, "position": self.position, "section": self.section}


# -------------------------------------------------------------------------- reST → text
_HEADING_CHARS = set("=-~^\"'*#+`:.")
_DROP_DIRECTIVES = {"index", "toctree", "contents", "sectionauthor", "moduleauthor",
                    "highlight", "currentmodule", "include", "only", "raw", "tabularcolumns",
                    "testsetup", "testcleanup", "literalinclude", "impl-detail", "audit-event",
                    "availability", "program", "cssclass", "rst-class", "deprecated-removed"}
_LABELLED = {"note": "Note", "warning": "Warning", "seealso": "See also",
             "versionadded": "New in version", "versionchanged": "Changed in version",
             "deprecated": "Deprecated since version", "tip": "Tip", "important": "Important"}
_ROLE = re.compile(r":[a-zA-Z:+-]+:`([^`]*)`")
_LINK = re.compile(r"`([^`<]+?)\s*<[^`>]*>`__?")
_REF = re.compile(r"`([^`]+)`__?")
_LITERAL = re.compile(r"``([^`]+)``")
_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w:-]+)::\s*(.*)$")


def _role_text(match: re.Match[str]) -> str:
    inner = match.group(1)
    link = re.match(r"(.*?)\s*<(.*)>$", inner, re.S)
    if link and link.group(1):
        return link.group(1)
    inner = link.group(2) if link else inner
    return inner.lstrip("~!")


def _inline(line: str) -> str:
    line = _ROLE.sub(_role_text, line)
    line = _LITERAL.sub(r"\1", line)
    line = _LINK.sub(r"\1", line)
    line = _REF.sub(r"\1", line)
    return line.replace("**", "").replace("\\*", "*")


def _is_underline(line: str, title: str) -> bool:
    s = line.rstrip()
    return (len(s) >= 3 and len(set(s)) == 1 and s[0] in _HEADING_CHARS
            and len(s) >= len(title.rstrip()) > 0 and not title.startswith(" "))


def rst_to_text(source: str) -> tuple[str, list[tuple[str, str, int]]]:
    """Strip reST markup; return the text and its headings as (title, underline char, offset)."""
    lines = source.splitlines()
    out: list[str] = []
    headings: list[tuple[str, str, int]] = []
    skip_indent: int | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if skip_indent is not None:
            if line.strip() == "" or len(line) - len(line.lstrip()) > skip_indent:
                i += 1
                continue
            skip_indent = None
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        # Over-and-underlined or underlined headings.
        if _is_underline(line, nxt) and i + 2 < len(lines) and _is_underline(lines[i + 2], nxt):
            line, nxt, i = nxt, lines[i + 2], i + 1
        if line.strip() and _is_underline(nxt, line) and not line.lstrip().startswith(".."):
            title = _inline(line.strip())
            offset = sum(len(x) + 1 for x in out)
            headings.append((title, nxt.strip()[0], offset))
            out.append(title)
            i += 2
            continue
        directive = _DIRECTIVE.match(line)
        if directive:
            indent, name, arg = len(directive.group(1)), directive.group(2), directive.group(3)
            name = name.split(":")[-1]
            if name in _DROP_DIRECTIVES and name != "only":
                skip_indent = indent
            elif name in _LABELLED:
                out.append(" " * indent + f"{_LABELLED[name]}: {_inline(arg)}".rstrip())
            elif name != "only" and arg:
                out.append(" " * indent + _inline(arg))
            i += 1
            continue
        if line.lstrip().startswith(".. "):  # comments and link targets
            skip_indent = len(line) - len(line.lstrip())
            i += 1
            continue
        if re.match(r"^:[\w-]+:( |$)", line):  # document fields such as :tocdepth: 2
            i += 1
            continue
        text = line
        if text.rstrip().endswith("::"):
            text = text.rstrip()[:-1]
            if text.strip() == ":":
                text = ""
        out.append(text.rstrip())
        i += 1
    text = re.sub(r"\n{3,}", "\n\n", _inline("\n".join(out))).strip() + "\n"
    # Offsets were taken before blank lines were collapsed: find each title again.
    fixed: list[tuple[str, str, int]] = []
    pos = 0
    for title, char, _ in headings:
        at = text.find(title, pos)
        if at >= 0:
            fixed.append((title, char, at))
            pos = at + len(title)
    return text, fixed


def _document(doc_id: str, source: str) -> Document:
    text, headings = rst_to_text(source)
    levels: dict[str, int] = {}
    for _, char, _ in headings:
        levels.setdefault(char, len(levels) + 1)
    # A section's body runs to the next heading of any level.
    ends = [start for _, _, start in headings[1:]] + [len(text)]
    sections = [Section(title, levels[char], start, end)
                for (title, char, start), end in zip(headings, ends)]
    title = headings[0][0] if headings else doc_id
    return Document(doc_id, title, text, tuple(sections))


# ------------------------------------------------------------------------------- build
def _sources_from_deb(deb: Path) -> dict[str, str]:
    """Read every ``*.rst.txt`` of the docs out of a ``python3.11-doc`` .deb (no apt needed)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True, capture_output=True)
            root = Path(tmp)
        except (FileNotFoundError, subprocess.CalledProcessError):
            root = _extract_deb_portably(deb, Path(tmp))
        return _sources_from_dir(root / SOURCES_DIR)


def _extract_deb_portably(deb: Path, into: Path) -> Path:
    """Unpack a .deb with the standard library (an ar archive holding data.tar.xz)."""
    raw = deb.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise CorpusError(f"{deb} is not a .deb archive: download python3.11-doc again.")
    pos = 8
    while pos < len(raw):
        name = raw[pos:pos + 16].decode().strip().rstrip("/")
        size = int(raw[pos + 48:pos + 58].decode().strip())
        body = raw[pos + 60:pos + 60 + size]
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                tar.extractall(into, filter="data")
            return into
        pos += 60 + size + (size % 2)
    raise CorpusError(f"{deb} holds no data archive: download python3.11-doc again.")


def _sources_from_dir(root: Path) -> dict[str, str]:
    files = sorted(root.rglob("*.rst.txt"))
    if not files:
        raise CorpusError(f"No *.rst.txt files under {root}: point --sources at .../html/_sources.")
    return {str(f.relative_to(root))[: -len(".rst.txt")]: f.read_text(encoding="utf-8")
            for f in files}


def build_corpus(sources: dict[str, str], out: Path) -> int:
    """Convert reST sources (doc id → text) into the corpus file; return the document count."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", encoding="utf-8", compresslevel=9) as fh:
        for doc_id, source in sorted(sources.items()):
            doc = _document(doc_id, source)
            if not doc.text.strip():
                continue
            fh.write(json.dumps({
                "doc_id": doc.doc_id, "title": doc.title, "text": doc.text,
                "sections": [[s.title, s.level, s.start, s.end] for s in doc.sections],
            }, ensure_ascii=False) + "\n")
    return len(load_documents.__wrapped__(out))  # type: ignore[attr-defined]


# -------------------------------------------------------------------------------- load
@lru_cache(maxsize=4)
def load_documents(path: Path = config.CORPUS_FILE) -> tuple[Document, ...]:
    """All documents of the corpus file, in a stable order (FAQ, tutorial, how-tos, …)."""
    if not Path(path).exists():
        raise CorpusError(
            f"The corpus file {path} is missing: restore it with `git checkout data/corpus` "
            "or rebuild it with `python -m helpers.corpus build --deb python3.11-doc_*.deb`."
        )
    docs = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            raw = json.loads(line)
            sections = tuple(Section(t, lv, s, e) for t, lv, s, e in raw["sections"])
            docs.append(Document(raw["doc_id"], raw["title"], raw["text"], sections))
    if not docs:
        raise CorpusError(f"The corpus file {path} holds no documents: rebuild it (data/README.md).")

    def rank(doc: Document) -> tuple[int, str]:
        top = doc.doc_id.split("/")[0]
        return (SECTION_ORDER.index(top) if top in SECTION_ORDER else len(SECTION_ORDER), doc.doc_id)

    return tuple(sorted(docs, key=rank))


def faq_questions(docs: Iterable[Document] | None = None) -> list[Question]:
    """The FAQ's questions: every FAQ heading ending in '?', with its answer's span."""
    docs = load_documents() if docs is None else docs
    questions = []
    for doc in docs:
        if not doc.doc_id.startswith("faq/"):
            continue
        for s in doc.sections:
            if s.title.endswith("?"):
                body_start = s.start + len(s.title)
                questions.append(Question(f"{doc.doc_id}#q{len(questions)}", s.title,
                                          doc.doc_id, body_start, s.end))
    return questions


# ------------------------------------------------------------------------------ chunks
def _paragraph_spans(text: str) -> Iterator[tuple[int, int]]:
    for m in re.finditer(r"\S(?:.|\n(?!\s*\n))*", text):
        yield m.start(), m.end()


def _split_long(start: int, end: int, text: str, size: int) -> Iterator[tuple[int, int]]:
    """Cut a span longer than ``size`` at whitespace, never mid-word when avoidable."""
    while end - start > size:
        cut = text.rfind(" ", start + size // 2, start + size)
        cut = cut if cut > start else start + size
        yield start, cut
        start = cut + 1 if text[cut:cut + 1] == " " else cut
    if end > start:
        yield start, end


def chunk_document(doc: Document, size: int = 800, overlap: int = 100) -> list[Chunk]:
    """Split a document into chunks of at most ``size`` characters along paragraphs.

    Consecutive chunks share about ``overlap`` characters, so a sentence cut at a chunk
    border is whole in one of them. Each chunk keeps its document id, position and span.
    """
    if size < 50:
        raise CorpusError(f"Chunk size {size} is too small to hold a sentence: use at least 50.")
    if not 0 <= overlap < size // 2:
        raise CorpusError(f"Overlap {overlap} must be between 0 and half the chunk size ({size // 2}).")
    pieces = [p for s, e in _paragraph_spans(doc.text) for p in _split_long(s, e, doc.text, size)]
    spans: list[tuple[int, int]] = []
    cur_start, cur_end = None, None
    for s, e in pieces:
        if cur_start is None:
            cur_start, cur_end = s, e
        elif e - cur_start <= size:
            cur_end = e
        else:
            spans.append((cur_start, cur_end))
            back = max(cur_end - overlap, cur_start)
            nxt = doc.text.find(" ", back, cur_end)
            back = nxt + 1 if overlap and 0 <= nxt < s else s
            cur_start, cur_end = (back, e) if e - back <= size else (s, e)
    if cur_start is not None:
        spans.append((cur_start, cur_end))
    chunks = []
    for position, (s, e) in enumerate(spans):
        section = next((sec.title for sec in reversed(doc.sections) if sec.start <= s), doc.title)
        chunks.append(Chunk(f"{doc.doc_id}#{position}", doc.doc_id, position,
                            doc.text[s:e], s, e, section))
    return chunks


def chunk_corpus(docs: Iterable[Document], size: int = 800, overlap: int = 100,
                 max_chunks: int | None = None) -> list[Chunk]:
    """Chunk documents in order, stopping at ``max_chunks`` whole documents' worth or fewer."""
    out: list[Chunk] = []
    for doc in docs:
        chunks = chunk_document(doc, size, overlap)
        if max_chunks is not None and len(out) + len(chunks) > max_chunks:
            out.extend(chunks[: max_chunks - len(out)])
            break
        out.extend(chunks)
    if not out:
        raise CorpusError("The corpus gave no chunks: check the corpus file and max_chunks > 0.")
    return out


def relevant_chunks(question: Question, chunks: Iterable[Chunk]) -> set[str]:
    """Ids of the chunks that hold most of the question's answer or are mostly answer."""
    found = set()
    for c in chunks:
        if c.doc_id != question.doc_id:
            continue
        shared = min(c.end, question.end) - max(c.start, question.start)
        if shared > 0.5 * min(c.end - c.start, question.end - question.start):
            found.add(c.id)
    return found


@dataclass
class QuestionSet:
    """FAQ questions whose answers lie in a given chunk list, with their relevant ids."""

    questions: list[Question] = field(default_factory=list)
    relevant: dict[str, set[str]] = field(default_factory=dict)

    def texts(self) -> list[str]:
        """The questions' texts, in order."""
        return [q.question for q in self.questions]


def question_set(chunks: list[Chunk], docs: Iterable[Document] | None = None) -> QuestionSet:
    """The FAQ questions answerable from ``chunks`` and the ids of their relevant chunks."""
    qs = QuestionSet()
    for q in faq_questions(docs):
        rel = relevant_chunks(q, chunks)
        if rel:
            qs.questions.append(q)
            qs.relevant[q.qid] = rel
    return qs


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.corpus build --deb FILE | --sources DIR``: rebuild the corpus file."""
    parser = argparse.ArgumentParser(prog="python -m helpers.corpus", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="rebuild data/corpus from python3.11-doc")
    src = build.add_mutually_exclusive_group(required=True)
    src.add_argument("--deb", type=Path, help="a python3.11-doc .deb (apt-get download python3.11-doc)")
    src.add_argument("--sources", type=Path, help="an html/_sources folder of the Python docs")
    build.add_argument("--out", type=Path, default=config.CORPUS_FILE)
    sub.add_parser("stats", help="documents, characters and FAQ questions in the corpus")
    args = parser.parse_args(argv)
    if args.command == "build":
        sources = _sources_from_deb(args.deb) if args.deb else _sources_from_dir(args.sources)
        n = build_corpus(sources, args.out)
        print(f"wrote {n} documents to {args.out}")
    else:
        docs = load_documents()
        print(f"{len(docs)} documents, {sum(len(d.text) for d in docs):,} characters, "
              f"{len(faq_questions(docs))} FAQ questions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
