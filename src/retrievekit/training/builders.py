"""Training data builders that need no generator: from relevance judgements (qrels) and self-supervised pairs from
the documents themselves — inverse cloze task, random cropping (Contriever), title→body, docstring→function for
source code. Each is deterministic under a seed (every document draws from its own ``Random(f"{seed}:{id}")``, so
the output does not depend on the order documents are stored in) and counts what it skipped in the returned set's
``stats``."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Literal, Protocol

from retrievekit.chunking.sentences import split_sentences
from retrievekit.core.document import Document
from retrievekit.training.code_functions import (
    CODE_LANGUAGES,
    CodeParseError,
    dedent,
    first_paragraph,
    functions,
    language_hint,
)
from retrievekit.training.data import TrainingDataError, TrainingExample, TrainingSet

logger = logging.getLogger(__name__)

__all__ = ["CODE_LANGUAGES", "DocumentSource", "docstring_function", "document_text", "from_qrels", "inverse_cloze",
           "random_crops", "title_body"]


class DocumentSource(Protocol):
    """What the builders use of a collection (``retrievekit.Collection`` provides it)."""

    def iter_documents(self) -> Iterator[Document]: ...

    def get_many(self, ids: Sequence[str]) -> list[Document | None]: ...


def document_text(doc: Document) -> str:
    """The text a model sees for a document: title and text joined by a space, as the BM25 index sees it."""
    return f"{doc.title} {doc.text}" if doc.title else doc.text


def from_qrels(collection: DocumentSource, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]],
               min_grade: int = 1, missing: Literal["error", "skip"] = "error") -> TrainingSet:
    """One example per (query, document judged at least ``min_grade``), in query-id then document-id order.

    Judged documents missing from the collection fail with a list of some of them (``missing="skip"`` skips them
    and counts them in ``stats["missing_documents"]``); judged queries with no text are skipped and counted."""
    if missing not in ("error", "skip"):
        raise TrainingDataError(f"missing must be 'error' or 'skip', got {missing!r}")
    pairs = [(qid, did) for qid in sorted(qrels) for did, grade in sorted(qrels[qid].items()) if grade >= min_grade]
    no_text = sorted({qid for qid, _ in pairs if not str(queries.get(qid, "")).strip()})
    pairs = [(qid, did) for qid, did in pairs if qid not in no_text]
    doc_ids = sorted({did for _, did in pairs})
    docs = dict(zip(doc_ids, collection.get_many(doc_ids)))
    absent = [did for did in doc_ids if docs[did] is None]
    if absent and missing == "error":
        shown = ", ".join(repr(d) for d in absent[:10]) + (", ..." if len(absent) > 10 else "")
        raise TrainingDataError(f"{len(absent)} of the {len(doc_ids)} judged documents are not in the collection: "
                                f"{shown} (is it the right collection? missing='skip' skips them)")
    examples = []
    for qid, did in pairs:
        doc = docs[did]
        if doc is None or not document_text(doc).strip():
            continue
        examples.append(TrainingExample(query=queries[qid], positive=document_text(doc), positive_id=did,
                                        source="qrels", query_id=qid))
    stats = {"examples": len(examples), "judged_pairs": len(pairs), "queries_without_text": len(no_text),
             "missing_documents": len(absent)}
    if no_text:
        logger.warning("%d judged queries have no text and were skipped (e.g. %s)", len(no_text), no_text[0])
    return TrainingSet(examples, stats)


def _rng(seed: int, doc: Document) -> random.Random:
    return random.Random(f"{seed}:{doc.id}")


def inverse_cloze(collection: DocumentSource, *, seed: int = 0, min_sentences: int = 3,
                  keep_probability: float = 0.1, limit: int | None = None) -> TrainingSet:
    """Inverse cloze task (Lee et al. 2019): a random sentence of a document is the query, the document without
    it the positive. With ``keep_probability`` the sentence stays in (10% in the paper), so the model also learns
    lexical matching. Documents with fewer than ``min_sentences`` sentences are skipped (``stats["too_short"]``)."""
    if min_sentences < 2:
        raise TrainingDataError("min_sentences must be at least 2: the positive needs a sentence besides the query")
    if not 0.0 <= keep_probability <= 1.0:
        raise TrainingDataError(f"keep_probability must be in [0, 1], got {keep_probability}")

    def make(doc: Document, rng: random.Random) -> TrainingExample | None:
        spans = split_sentences(doc.text)
        if len(spans) < min_sentences:
            return None
        pick = rng.randrange(len(spans))
        kept = spans if rng.random() < keep_probability else spans[:pick] + spans[pick + 1:]
        body = " ".join(doc.text[s:e] for s, e in kept)
        positive = f"{doc.title} {body}" if doc.title else body
        start, end = spans[pick]
        return TrainingExample(query=doc.text[start:end], positive=positive, positive_id=doc.id, source="ict")

    return _build(collection, make, seed, limit)


def random_crops(collection: DocumentSource, *, seed: int = 0, min_ratio: float = 0.1, max_ratio: float = 0.5,
                 min_words: int = 16, limit: int | None = None) -> TrainingSet:
    """Independent random cropping (Contriever, Izacard et al. 2022): two spans of a document, each of a random
    length between ``min_ratio`` and ``max_ratio`` of its words, form a positive pair. Documents under
    ``min_words`` words are skipped (``stats["too_short"]``)."""
    if not 0.0 < min_ratio <= max_ratio <= 1.0:
        raise TrainingDataError(f"need 0 < min_ratio <= max_ratio <= 1, got {min_ratio}, {max_ratio}")
    if min_words < 2:
        raise TrainingDataError("min_words must be at least 2")

    def crop(words: list[str], rng: random.Random) -> str:
        length = max(1, round(len(words) * rng.uniform(min_ratio, max_ratio)))
        start = rng.randrange(len(words) - length + 1)
        return " ".join(words[start:start + length])

    def make(doc: Document, rng: random.Random) -> TrainingExample | None:
        words = document_text(doc).split()
        if len(words) < min_words:
            return None
        return TrainingExample(query=crop(words, rng), positive=crop(words, rng), positive_id=doc.id, source="crop")

    return _build(collection, make, seed, limit)


def title_body(collection: DocumentSource, *, seed: int = 0, min_words: int = 5,
               limit: int | None = None) -> TrainingSet:
    """Title → body pairs: the title is the query, the text the positive. Documents without a title or with under
    ``min_words`` words of text are skipped (``stats["too_short"]``). ``seed`` is accepted for a uniform interface;
    the pairs involve no randomness."""

    def make(doc: Document, rng: random.Random) -> TrainingExample | None:
        if not doc.title.strip() or len(doc.text.split()) < min_words:
            return None
        return TrainingExample(query=doc.title.strip(), positive=doc.text, positive_id=doc.id, source="title")

    return _build(collection, make, seed, limit)


def docstring_function(collection: DocumentSource, *, languages: Iterable[str] = CODE_LANGUAGES,
                       min_doc_words: int = 3, seed: int = 0, limit: int | None = None) -> TrainingSet:
    """Docstring → function pairs from source-code documents (as in CodeSearchNet): for each documented function
    or method, the query is the first paragraph of its docstring (or doc comment), the positive its source without
    the docstring, ``positive_id`` ``"{document id}#{qualified name}"``.

    A document that is one symbol of a code collection (``Collection.ingest_code``: metadata ``kind`` "function"
    or "method" and ``qualname``, id ``PATH#QUALNAME``) gives at most one example, its own function, with
    ``positive_id`` its document id; a symbol split into parts is skipped (``partial``), other kinds of symbol
    (classes, windows of lines) give nothing (``not_function``).

    A document's language is what its metadata declares (``language``, else the extension of ``path``/``file``/
    ``filename``/``extension``, else of its id; files ingested from a folder carry ``path``); one that declares
    nothing is tried as Python and used if it parses (prose that happens to parse has no functions, so it yields
    nothing). ``languages``: any of python, javascript, typescript, java, go (see
    :mod:`retrievekit.training.code_functions` for how the last four are read and what is skipped). Skipped and
    counted in ``stats``: documents in no requested language (``not_code``), files that do not parse
    (``unparsable``), docstrings under ``min_doc_words`` words (``too_short``), dunder methods such as
    ``__init__`` (``dunder``), functions with no code besides the docstring (``empty_body``). ``seed`` is
    accepted for a uniform interface; nothing is random. ``limit``: stop after that many examples."""
    wanted = {str(name).lower() for name in languages}
    unknown = sorted(wanted - set(CODE_LANGUAGES))
    if unknown or not wanted:
        raise TrainingDataError(f"unknown language(s) {', '.join(unknown) or '(none given)'}; choose from "
                                f"{', '.join(CODE_LANGUAGES)}")
    if min_doc_words < 1:
        raise TrainingDataError(f"min_doc_words must be at least 1, got {min_doc_words}")
    if limit is not None and limit < 0:
        raise TrainingDataError(f"limit must be non-negative, got {limit}")
    stats = dict.fromkeys(("documents", "code_documents", "not_code", "unparsable", "not_function", "partial",
                           "functions", "too_short", "dunder", "empty_body", "examples"), 0)
    examples: list[TrainingExample] = []
    for doc in collection.iter_documents():
        if limit is not None and len(examples) >= limit:
            break
        stats["documents"] += 1
        hint = language_hint(doc.id, doc.metadata)
        language = hint if hint is not None else "python"
        if language not in wanted:
            stats["not_code"] += 1
            continue
        symbol = doc.metadata.get("qualname") if "kind" in doc.metadata else None
        if symbol is not None and doc.metadata.get("kind") not in ("function", "method"):
            stats["not_function"] += 1
            continue
        if symbol is not None and (doc.metadata.get("parts") or 1) > 1:
            stats["partial"] += 1
            continue
        try:  # a symbol's text is indented as in its file (a method): dedented it parses on its own
            found = functions(dedent(doc.text) if symbol is not None else doc.text, language)
        except CodeParseError:
            stats["unparsable" if hint is not None else "not_code"] += 1
            continue
        stats["code_documents"] += 1
        if symbol is not None:  # the symbol's own definition, not a documented function nested in it
            found = [replace(f, qualname=str(symbol)) for f in found if not f.nested][:1]
        for function in found:
            stats["functions"] += 1
            name = function.qualname.rsplit(".", 1)[-1]
            query = first_paragraph(function.doc)
            if name.startswith("__") and name.endswith("__"):
                stats["dunder"] += 1
            elif len(query.split()) < min_doc_words:
                stats["too_short"] += 1
            elif function.empty_body:
                stats["empty_body"] += 1
            elif limit is None or len(examples) < limit:
                examples.append(TrainingExample(
                    query=query, positive=function.source, source="docstring",
                    positive_id=doc.id if symbol is not None else f"{doc.id}#{function.qualname}"))
    if not stats["documents"]:
        raise TrainingDataError("the collection has no documents to build training pairs from")
    if stats["unparsable"]:
        logger.warning("%d of %d code documents did not parse and were skipped", stats["unparsable"],
                       stats["unparsable"] + stats["code_documents"])
    if not examples:
        logger.warning("no documented functions found in %d documents (languages: %s)", stats["documents"],
                       ", ".join(sorted(wanted)))
    stats["examples"] = len(examples)
    return TrainingSet(examples, stats)


def _build(collection: DocumentSource, make: Callable[[Document, random.Random], TrainingExample | None], seed: int,
           limit: int | None) -> TrainingSet:
    if limit is not None and limit < 0:
        raise TrainingDataError(f"limit must be non-negative, got {limit}")
    examples: list[TrainingExample] = []
    documents = skipped = 0
    for doc in collection.iter_documents():
        if limit is not None and len(examples) >= limit:
            break
        documents += 1
        example = make(doc, _rng(seed, doc))
        if example is None:
            skipped += 1
        else:
            examples.append(example)
    if not documents:
        raise TrainingDataError("the collection has no documents to build training pairs from")
    if not examples:
        logger.warning("every one of %d documents was too short for this builder", documents)
    return TrainingSet(examples, {"documents": documents, "examples": len(examples), "too_short": skipped})
