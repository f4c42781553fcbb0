"""BEIR corpus reader: a folder holding ``corpus.jsonl`` (``_id``, ``title``, ``text``, extra keys)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from retrievekit.core.document import Document
from retrievekit.core.errors import InputFormatError
from retrievekit.ingest.base import OnBytes, check_exists
from retrievekit.ingest.jsonl import read_jsonl

CORPUS_NAMES = ("corpus.jsonl", "corpus.jsonl.gz")


def find_corpus(folder: Path) -> Path | None:
    """The corpus file of a BEIR folder, or None when the folder has none."""
    for name in CORPUS_NAMES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def corpus_path(source: str | Path) -> Path:
    """Resolve a BEIR source (the dataset folder, or its corpus file itself) to the corpus file."""
    path = Path(source)
    check_exists(path)
    if path.is_file():
        return path
    corpus = find_corpus(path)
    if corpus is None:
        raise InputFormatError(f"not a BEIR folder: it has no {' or '.join(CORPUS_NAMES)}", path=path)
    return corpus


def read_beir(
    source: str | Path,
    *,
    encoding_errors: str = "strict",
    on_bytes: OnBytes | None = None,
) -> Iterator[Document]:
    """Stream the documents of a BEIR dataset folder (queries and qrels are not read here).

    BEIR's fields are used as the BEIR loader does: ``_id`` is the id, ``title`` and ``text`` the
    content; any other key (e.g. ``metadata``) is kept in ``Document.metadata``.
    """
    return read_jsonl(corpus_path(source), id_field="_id", title_field="title", text_field="text",
                      encoding_errors=encoding_errors, on_bytes=on_bytes)
