"""Synthetic training queries written by a generator for the collection's own documents (InPars, Bonifacio et al.
2022; Promptagator, Dai et al. 2022).

A seeded sample of documents is shown to a generator, after a few (document, query) examples when the user has
some (Promptagator's few-shot prompting), and it writes a query for each. Outputs are cleaned and junk is rejected
(empty, run-on, or a span copied from the document); with ``round_trip`` a query is kept only when the collection's
own retriever ranks its source document in the top k (round-trip consistency filtering). Generation is the slow
part, so with ``state=PATH`` every raw output is appended to a JSONL state file as it is made: a run that fails
(a generator error, a crash) is repeated with the same call and generates only the rest.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import os
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import IO, Any, cast

from retrievekit.core.errors import InputFormatError
from retrievekit.core.files import atomic_write_text
from retrievekit.core.progress import progress_bar
from retrievekit.rag.generators.base import Generator, PromptInput, check_generation_args, get_generator
from retrievekit.training.builders import DocumentSource, document_text
from retrievekit.training.data import TrainingDataError, TrainingExample, TrainingSet
from retrievekit.training.mining import MODES, SearchableSource

logger = logging.getLogger(__name__)

__all__ = ["RoundTrip", "build_prompt", "clean_query", "generate_queries", "load_examples"]

STATE_FORMAT = "retrievekit-synthetic-queries"
STATE_VERSION = 1
# Part of the prompt digest: changing a template below must make old state files refuse to resume.
TEMPLATE_VERSION = 1
INSTRUCTION = ("Write one short search query that a person could type into a search engine to find the document "
               "below: a question or a few keywords, not a sentence copied from it. Reply with the query only.")
COMPLETION_HEADER = "Write a short search query that the document answers."
DOCUMENT, QUERY = "Document:", "Relevant query:"
REJECTIONS = ("empty", "too_long", "copy", "example", "repetitive", "duplicate")
#: a word pair seen this many times in one query means the generator looped ("the theory of the theory of ...")
REPEATED_PAIR = 3
# (document, query) given by the user, or a training example whose positive is the document
ExampleInput = tuple[str, str] | Mapping[str, str] | TrainingExample


@dataclass(frozen=True)
class RoundTrip:
    """Round-trip consistency filtering: keep a generated query only when searching the collection for it
    (``mode``: bm25, dense or hybrid) ranks its source document among the top ``k`` (Promptagator uses k=1)."""

    k: int = 1
    mode: str = "bm25"

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise TrainingDataError(f"round-trip k must be a positive integer, got {self.k!r}")
        if self.mode not in MODES:
            raise TrainingDataError(f"unknown round-trip mode {self.mode!r}; choose one of {', '.join(MODES)}")


def generate_queries(
    collection: DocumentSource,
    generator: Generator | str,
    *,
    examples: Iterable[ExampleInput] | None = None,
    per_document: int = 1,
    limit: int | None = None,
    seed: int = 0,
    max_tokens: int = 48,
    temperature: float | None = None,
    round_trip: RoundTrip | None = None,
    state: str | Path | None = None,
    progress: bool = True,
    shots: int = 8,
    max_document_words: int = 256,
    max_query_words: int = 32,
    copy_min_words: int = 8,
    batch_size: int = 16,
) -> TrainingSet:
    """``per_document`` generated queries for each of ``limit`` documents (all by default), as training examples
    (``source="synthetic"``, ``positive_id`` = the document, ``query_id`` = ``syn-{doc}-{i}``).

    Documents are a seeded sample that does not depend on the order they are stored in, and a larger ``limit``
    under the same seed adds documents to a smaller one's. ``examples``: (document, query) pairs, ``{"document",
    "query"}`` mappings or ``TrainingExample``s (e.g. from ``from_qrels``); up to ``shots`` of them (a seeded
    choice) precede each document in the prompt. Without them a built-in instruction is used. The prompt is chat
    messages or plain text as ``generator.prompt_style`` says; documents are cut to ``max_document_words``.
    ``temperature``: by default 0 (the most likely query) for one query per document, 0.8 for several (they
    must differ). Queries longer than ``max_query_words``, copies of ``copy_min_words`` or more consecutive
    words of the document, copies of an example's query, loops (a word pair ``REPEATED_PAIR`` times), empty ones
    and repeats of the same document are rejected and counted in ``stats``.

    ``state``: a JSONL file of the raw outputs, appended and fsynced every ``batch_size`` documents (and when the
    generator fails); a repeated call with the same settings reuses them, one with other settings (generator,
    prompt and examples, seed, max_tokens, temperature, max_document_words) fails naming the setting. Growing
    ``limit`` or ``per_document`` reuses the outputs made so far. The file is left in place: delete it when done.
    """
    if isinstance(per_document, bool) or not isinstance(per_document, int) or per_document < 1:
        raise TrainingDataError(f"per_document must be a positive integer, got {per_document!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise TrainingDataError(f"limit must be a non-negative integer, got {limit!r}")
    for name, value in (("shots", shots), ("max_document_words", max_document_words),
                        ("max_query_words", max_query_words), ("copy_min_words", copy_min_words),
                        ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TrainingDataError(f"{name} must be a positive integer, got {value!r}")
    if temperature is None:
        temperature = 0.0 if per_document == 1 else 0.8
    check_generation_args(max_tokens, temperature)
    if round_trip is not None and not callable(getattr(collection, "search", None)):
        raise TrainingDataError("round-trip filtering needs a collection that can search (a retrievekit Collection)")
    shown = _few_shot(examples or (), shots, seed, max_document_words)
    if round_trip is not None:  # a missing index (e.g. mode="dense" without one) fails now, not after generating
        cast(SearchableSource, collection).search(["query"], 1, mode=round_trip.mode)

    owned = isinstance(generator, str)
    gen = get_generator(generator)
    try:
        style = gen.prompt_style if gen.prompt_style in ("chat", "completion") else "chat"
        selected, empty = _select(collection, seed, limit)
        settings = {"generator": gen.config(), "prompt_and_examples": _digest(style, shown), "seed": seed,
                    "max_tokens": max_tokens, "temperature": float(temperature),
                    "max_document_words": max_document_words}
        log = _StateFile(Path(state), settings) if state is not None else None
        stats = dict.fromkeys(("documents", "empty_documents", "missing_documents", "generated", "resumed"), 0)
        stats.update(documents=len(selected), empty_documents=empty)
        texts, raw = _generate(collection, gen, selected, per_document, shown, style, log, stats, max_tokens,
                               float(temperature), max_document_words, batch_size, progress)
    finally:
        if owned:
            gen.close()

    candidates: list[TrainingExample] = []
    stats.update({f"rejected_{r}": 0 for r in REJECTIONS})
    shown_queries = frozenset(_normal(q) for _, q in shown)
    for doc_id in selected:
        if doc_id not in texts:
            continue
        text, seen = texts[doc_id], set[str]()
        document_words = f" {_normal(text)} "  # once per document, not per query: copies are looked up in it
        for i in range(per_document):
            query = clean_query(raw[(doc_id, i)])
            rejected = _rejection(query, document_words, seen, max_query_words, copy_min_words, shown_queries)
            if rejected:
                stats[f"rejected_{rejected}"] += 1
                continue
            seen.add(query.casefold())
            candidates.append(TrainingExample(query=query, positive=text, positive_id=doc_id, source="synthetic",
                                              query_id=f"syn-{doc_id}-{i}"))
    stats["rejected"] = sum(stats[f"rejected_{r}"] for r in REJECTIONS)
    if round_trip is not None:
        candidates = _round_trip(cast(SearchableSource, collection), candidates, round_trip, stats)
    stats["examples"] = len(candidates)
    if stats["rejected"]:
        logger.info("rejected %d of %d generated queries (%s)", stats["rejected"], len(raw),
                    ", ".join(f"{r}: {stats[f'rejected_{r}']}" for r in REJECTIONS))
    return TrainingSet(candidates, stats)


# -- documents and prompts ---------------------------------------------------------------------------------------
def _select(collection: DocumentSource, seed: int, limit: int | None) -> tuple[list[str], int]:
    """Ids of the documents to write queries for, in a seeded order that ignores storage order: each id ranks by a
    hash of (seed, id), so the ``limit`` smallest form the sample. Only ids are kept, not texts."""
    def key(doc_id: str) -> bytes:
        return hashlib.blake2b(f"{seed}:{doc_id}".encode(), digest_size=8).digest()

    keyed: list[tuple[bytes, str]] = []
    empty = total = 0
    for doc in collection.iter_documents():
        total += 1
        if not document_text(doc).strip():
            empty += 1
            continue
        keyed.append((key(doc.id), doc.id))
        if limit is not None and len(keyed) > 2 * limit + 1024:  # keep memory near O(limit) on big collections
            keyed = heapq.nsmallest(limit, keyed)
    if not total:
        raise TrainingDataError("the collection has no documents to generate queries for")
    if not keyed:
        raise TrainingDataError(f"every one of the collection's {total} documents is empty")
    chosen = sorted(keyed) if limit is None else heapq.nsmallest(limit, keyed)
    return [doc_id for _, doc_id in chosen], empty


def _words(text: str, limit: int) -> str:
    """``text`` on one line (a completion prompt is line-based), cut to ``limit`` words."""
    words = text.split()
    return " ".join(words[:limit]) + (" ..." if len(words) > limit else "")


def _few_shot(examples: Iterable[ExampleInput], shots: int, seed: int, max_words: int) -> list[tuple[str, str]]:
    pairs = []
    document: Any
    query: Any
    for n, e in enumerate(examples, 1):
        if isinstance(e, TrainingExample):
            document, query = e.positive, e.query
        elif isinstance(e, Mapping):
            document, query = e.get("document"), e.get("query")
        elif isinstance(e, Sequence) and not isinstance(e, str) and len(e) == 2:
            document, query = e
        else:
            raise TrainingDataError(f"example {n}: expected a (document, query) pair, a {{'document', 'query'}} "
                                    f"mapping or a TrainingExample, got {e!r:.100}")
        if not isinstance(document, str) or not document.strip():
            raise TrainingDataError(f"example {n}: the document must be a non-empty string")
        if not isinstance(query, str) or not query.strip():
            raise TrainingDataError(f"example {n}: the query must be a non-empty string")
        pairs.append((_words(document, max_words), " ".join(query.split())))
    if len(pairs) > shots:  # a fixed seeded choice: every prompt shows the same examples (as Promptagator does)
        picked = sorted(random.Random(f"{seed}:shots").sample(range(len(pairs)), shots))
        pairs = [pairs[i] for i in picked]
    return pairs


def build_prompt(document: str, examples: Sequence[tuple[str, str]], style: str,
                 max_document_words: int = 256) -> PromptInput:
    """The prompt asking for ``document``'s query. ``style="completion"`` (base models): "Document: ...\\nRelevant
    query: ..." blocks, one per example, then the document and an open "Relevant query:" to continue (stop at the
    line end). ``"chat"``: an instruction, each example as a user/assistant exchange, then the document."""
    target = _words(document, max_document_words)
    if style == "completion":
        blocks = [f"{DOCUMENT} {d}\n{QUERY} {q}" for d, q in examples] or [COMPLETION_HEADER]
        return "\n\n".join([*blocks, f"{DOCUMENT} {target}\n{QUERY}"])
    messages = [{"role": "system", "content": INSTRUCTION}]
    for d, q in examples:
        messages += [{"role": "user", "content": f"{DOCUMENT} {d}"}, {"role": "assistant", "content": q}]
    messages.append({"role": "user", "content": f"{DOCUMENT} {target}"})
    return messages


def _digest(style: str, examples: Sequence[tuple[str, str]]) -> str:
    payload = json.dumps([TEMPLATE_VERSION, style, INSTRUCTION, COMPLETION_HEADER, examples], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# -- generation --------------------------------------------------------------------------------------------------
def _generate(collection: DocumentSource, gen: Generator, selected: list[str], per_document: int,
              examples: list[tuple[str, str]], style: str, log: _StateFile | None, stats: dict[str, int],
              max_tokens: int, temperature: float, max_document_words: int, batch_size: int,
              progress: bool) -> tuple[dict[str, str], dict[tuple[str, int], str]]:
    """(document texts, raw outputs by (document id, sample index)), reusing the state file's outputs."""
    raw: dict[tuple[str, int], str] = {}
    done = log.done if log is not None else {}
    wanted = {(d, i) for d in selected for i in range(per_document)}
    stats["resumed"] = len(wanted & done.keys())
    stop = ["\n"] if style == "completion" else None
    texts: dict[str, str] = {}
    bar = progress_bar(progress, total=len(wanted) - stats["resumed"], desc="generating queries", unit="query")
    try:
        for start in range(0, len(selected), batch_size):
            ids = selected[start:start + batch_size]
            made: list[tuple[str, int, str]] = []
            pending: list[tuple[str, int, PromptInput]] = []
            try:
                for doc_id, doc in zip(ids, collection.get_many(ids)):
                    if doc is None:  # deleted since it was sampled
                        stats["missing_documents"] += 1
                        continue
                    texts[doc_id] = document_text(doc)
                    prompt: PromptInput | None = None
                    for i in range(per_document):
                        if (doc_id, i) in done:
                            raw[(doc_id, i)] = done[(doc_id, i)]
                            continue
                        if prompt is None:
                            prompt = build_prompt(texts[doc_id], examples, style, max_document_words)
                        pending.append((doc_id, i, prompt))
                # a batching generator gets the batch's prompts at once; others one at a time, so that what was
                # generated before a failure is kept
                outs: Iterable[str]
                if gen.batches and pending:
                    outs = gen.generate_many([p for _, _, p in pending], max_tokens=max_tokens,
                                             temperature=temperature, stop=stop)
                else:
                    outs = (gen.generate(p, max_tokens=max_tokens, temperature=temperature, stop=stop)
                            for _, _, p in pending)
                for (doc_id, i, _), out in zip(pending, outs):
                    raw[(doc_id, i)] = str(out)
                    made.append((doc_id, i, str(out)))
                    stats["generated"] += 1
                    bar.update(1)
            finally:  # what was generated before a failure is kept, so a rerun does not pay for it again
                if log is not None:
                    log.append(made)
    finally:
        bar.close()
        if log is not None:
            log.close()
    return texts, raw


_PREFIX = re.compile(r"^(?:(?:relevant|search|generated|synthetic|example|your)\s+)?(?:query|question|q)\s*\d*\s*"
                     r":\s*", re.IGNORECASE)
_BULLET = re.compile(r"^(?:[-*•]|\d{1,2}[.)])\s+")
_CLOSING = {'"': '"', "'": "'", "`": "`", "\u201c": "\u201d", "\u2018": "\u2019", "\u00ab": "\u00bb"}
_QUOTE_CHARS = "\"`\u201c\u201d\u2018\u2019\u00ab\u00bb"  # not ': a lone one is more often an apostrophe


def _unquote(line: str) -> str:
    """``line`` without the quotes around it, or without a lone quote at one end (the other end cut off by the
    stop string or ``max_tokens``)."""
    if len(line) >= 2 and line[0] in _CLOSING and line[-1] == _CLOSING[line[0]]:
        return line[1:-1].strip()
    for quote in _QUOTE_CHARS:
        if line.count(quote) == 1 and (line[0] == quote or line[-1] == quote):
            return line.strip(quote).strip()
    return line


def clean_query(text: str) -> str:
    """The query in a generator's output: the first line with text once a "Query:"-like label, a list bullet and
    surrounding quotes are removed, whitespace collapsed; lines that only introduce an answer ("Here is a
    query:") are skipped. "" when there is none."""
    for line in text.splitlines():
        line = " ".join(line.split())
        previous = None
        while line and line != previous:
            previous = line
            line = _unquote(_BULLET.sub("", _PREFIX.sub("", line)).strip())
        if line and not line.endswith(":"):
            return line
    return ""


_TOKEN = re.compile(r"\w+")


def _normal(text: str) -> str:
    return " ".join(_TOKEN.findall(text.casefold()))


def _rejection(query: str, document_words: str, seen: set[str], max_words: int, copy_min_words: int,
               shown_queries: frozenset[str]) -> str | None:
    """Why ``query`` is rejected (None: kept). ``document_words``: the document's words as ``_normal`` gives them,
    padded with a space on each side."""
    if not query:
        return "empty"
    if len(query.split()) > max_words:
        return "too_long"
    words = _TOKEN.findall(query.casefold())
    normal = " ".join(words)
    if len(words) >= copy_min_words and f" {normal} " in document_words:
        return "copy"
    # a small model often answers with a query of the prompt's own examples: a positive pair for a document it is
    # not about (gemma-3-270m did so for 6-9% of the documents of three BEIR-style corpora)
    if normal in shown_queries:
        return "example"
    pairs = Counter(pairwise(words))
    if pairs and max(pairs.values()) >= REPEATED_PAIR:
        return "repetitive"
    if query.casefold() in seen:
        return "duplicate"
    return None


def _round_trip(collection: SearchableSource, candidates: list[TrainingExample], rt: RoundTrip,
                stats: dict[str, int], batch: int = 256) -> list[TrainingExample]:
    kept = []
    for start in range(0, len(candidates), batch):
        chunk = candidates[start:start + batch]
        results = collection.search([e.query for e in chunk], rt.k, mode=rt.mode)
        for j, e in enumerate(chunk):
            if e.positive_id in {doc_id for doc_id, _ in results.hits(j)[:rt.k]}:
                kept.append(e)
    stats["round_trip_kept"], stats["round_trip_dropped"] = len(kept), len(candidates) - len(kept)
    return kept


# -- the state file ----------------------------------------------------------------------------------------------
class _StateFile:
    """Raw outputs of earlier runs (``done``), and an append handle for new ones. Line 1 is a header with the
    settings that determine the outputs; each further line is ``{"doc", "i", "raw"}``. A last line without its
    newline is what a crash mid-write leaves: it is dropped (and cut off the file) on open."""

    def __init__(self, path: Path, settings: dict[str, Any]) -> None:
        self.path = path
        self.settings = json.loads(json.dumps(settings))  # as it reads back (tuples become lists)
        self.done: dict[tuple[str, int], str] = {}
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            header = {"format": STATE_FORMAT, "version": STATE_VERSION, "settings": self.settings}
            atomic_write_text(path, json.dumps(header, ensure_ascii=False) + "\n")
        else:
            self._read()
        self._file: IO[bytes] | None = open(path, "ab")  # noqa: SIM115 - held for the run, closed by close()

    def _read(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            logger.warning("%s: ignoring a truncated last line (an interrupted write)", self.path)
            with open(self.path, "r+b") as f:
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
        lines = data[:end].decode("utf-8", "replace").splitlines()
        try:
            header = json.loads(lines[0]) if lines else None
        except json.JSONDecodeError:
            header = None
        if not isinstance(header, dict) or header.get("format") != STATE_FORMAT:
            raise InputFormatError("not a synthetic query state file (delete it, or name another file)", self.path, 1)
        if header.get("version") != STATE_VERSION:
            raise InputFormatError(f"state file version {header.get('version')!r}, this release reads "
                                   f"{STATE_VERSION}; delete it to start over", self.path, 1)
        difference = _difference(header.get("settings"), self.settings)
        if difference:
            raise TrainingDataError(
                f"{self.path} holds queries generated with other settings ({difference}); rerun with the same "
                "settings to resume, or delete the file to start over with the new ones")
        for lineno, line in enumerate(lines[1:], 2):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                key, out = (entry["doc"], entry["i"]), entry["raw"]
                if not (isinstance(key[0], str) and isinstance(key[1], int) and isinstance(out, str)):
                    raise TypeError
            except (json.JSONDecodeError, KeyError, TypeError):
                raise InputFormatError("damaged state line (expected {\"doc\", \"i\", \"raw\"}); delete the file "
                                       "to start over", self.path, lineno) from None
            self.done[key] = out

    def append(self, entries: list[tuple[str, int, str]]) -> None:
        if not entries or self._file is None:
            return
        lines = "".join(json.dumps({"doc": d, "i": i, "raw": r}, ensure_ascii=False) + "\n" for d, i, r in entries)
        self._file.write(lines.encode("utf-8"))
        self._file.flush()
        os.fsync(self._file.fileno())
        self.done.update(((d, i), r) for d, i, r in entries)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _difference(old: Any, new: Any, where: str = "") -> str | None:
    """The first setting that differs, as "name: OLD then, NEW now"."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            found = _difference(old.get(key), new.get(key), f"{where}.{key}" if where else str(key))
            if found:
                return found
        return None
    if old != new:
        return f"{where or 'settings'}: {json.dumps(old)} then, {json.dumps(new)} now"
    return None


# -- examples from a file ----------------------------------------------------------------------------------------
def load_examples(path: str | Path) -> list[tuple[str, str]]:
    """(document, query) pairs from JSONL: ``{"document", "query"}`` lines, or training data lines (``query`` and
    ``positive``, as ``TrainingSet.save`` writes). A bad line fails naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputFormatError("no such examples file", path)
    pairs = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputFormatError(f"invalid JSON: {exc.msg}", path, lineno) from None
            if not isinstance(obj, dict):
                raise InputFormatError("expected a JSON object with 'document' and 'query'", path, lineno)
            if "document" in obj:
                document, query = obj.get("document"), obj.get("query")
            elif "positive" in obj:
                try:
                    example = TrainingExample.from_json(obj)
                except (TrainingDataError, TypeError) as exc:
                    raise InputFormatError(str(exc), path, lineno) from None
                document, query = example.positive, example.query
            else:
                raise InputFormatError("expected 'document' and 'query' (or training data: 'query' and "
                                       "'positive')", path, lineno)
            for name, value in (("document", document), ("query", query)):
                if not isinstance(value, str) or not value.strip():
                    raise InputFormatError(f"{name!r} must be a non-empty string", path, lineno)
            pairs.append((cast(str, document), cast(str, query)))
    if not pairs:
        raise InputFormatError("the examples file has no examples", path)
    return pairs
