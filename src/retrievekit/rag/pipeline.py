"""Retrieval-augmented generation over a collection: retrieve -> guard -> select -> compress -> prompt -> generate.

    rag = RAG(collection, selector="gap+budget:1024", compress="lexical", generator="local")
    answer = rag.ask("who wrote the paper?")
    answer.answer, answer.citations, answer.contexts

Every stage is optional and swappable: ``generator=None`` stops after context selection (what the retrieval-for-RAG
benchmarks measure). Retrieved passages are whole documents, or passages of a passage collection
(``Collection.create(path, passages="sentences:128")``), which link back to their document and character span;
a whole document too long for a context is narrowed to its chunks that bear on the question (``rag.focus``).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from retrievekit.core.errors import RetrievekitError
from retrievekit.core.filters import Filter
from retrievekit.rag.compression import CompressionError, SentenceCompressor, parse_compressor
from retrievekit.rag.config import DEFAULT_RAG_CONFIG as _D
from retrievekit.rag.config import RAGConfig
from retrievekit.rag.focus import focus_long_documents
from retrievekit.rag.locations import locate_passages
from retrievekit.rag.prompts import (
    COMPLETION_STOP,
    UNKNOWN_ANSWER,
    Citation,
    add_missing_citations,
    build_prompt,
    is_unknown,
    parse_citations,
)
from retrievekit.rag.safety import DATA_NOTICE, allow_list, annotate, wrap_as_data
from retrievekit.rag.selection import Selector, get_selector
from retrievekit.rag.types import Passage, count_tokens
from retrievekit.retrieval.base import CollectionView, SearchResults
from retrievekit.retrieval.fusion import rrf
from retrievekit.storage.writer import PASSAGE_END, PASSAGE_HEADING, PASSAGE_OF, PASSAGE_START

if TYPE_CHECKING:
    from retrievekit.core.document import Document
    from retrievekit.rag.generators.base import Generator


class SearchableCollection(CollectionView, Protocol):
    """What the RAG pipeline uses of a collection (``retrievekit.Collection`` provides it)."""

    @property
    def config(self) -> dict[str, Any]: ...

    @property
    def default_mode(self) -> str: ...

    def search(self, queries: str | Sequence[str], k: int = 10, *, mode: str = "bm25", filter: Filter | None = None,
               threads: int = 1, **options: Any) -> SearchResults: ...

    def hit_documents(self, results: SearchResults, query: int = 0,
                      start: int = 0) -> list[tuple[Document, float]]: ...

logger = logging.getLogger(__name__)

__all__ = ["RAG", "Answer", "RAGConfig", "RAGError", "RetrievalCache"]

_PASSAGE_KEYS = (PASSAGE_OF, PASSAGE_START, PASSAGE_END)


class RAGError(RetrievekitError, ValueError):
    """A RAG setting cannot be used."""


@dataclass
class Answer:
    """The result of ``RAG.ask``: the answer, the sources it cites (mapped to documents and offsets) and the
    contexts the generator saw. ``unknown``: the answer says the sources do not contain it."""

    question: str
    answer: str
    citations: list[Citation]
    contexts: list[Passage]
    unknown: bool
    retrieval_cached: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)  # what was searched (expansion adds rewrites)
    attributed: bool = False  # citation markers were added after generation by word overlap (base models)
    unsupported: str | None = None  # a generated answer withheld because it cites no source (require_citations)

    @property
    def context_tokens(self) -> int:
        return sum(count_tokens(p.text) for p in self.contexts)

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "unknown": self.unknown,
            "citations": [{"number": c.number, "passage_id": c.passage_id, "doc_id": c.doc_id, "start": c.start,
                           "end": c.end, "spans": [list(s) for s in c.spans] if c.spans else None,
                           "mentions": [list(m) for m in c.mentions],
                           "location": c.location.to_json() if c.location is not None else None}
                          for c in self.citations],
            "contexts": [{"number": i, "id": p.id, "doc_id": p.doc_id, "title": p.title, "text": p.text,
                          "score": p.score, "start": p.start, "end": p.end,
                          "spans": [list(s) for s in p.spans] if p.spans else None, "flags": p.flags,
                          "location": p.location.to_json() if p.location is not None else None}
                         for i, p in enumerate(self.contexts, start=1)],
            "context_tokens": self.context_tokens,
            "retrieval_cached": self.retrieval_cached,
            "citations_attributed": self.attributed,
            "unsupported_answer": self.unsupported,
            "queries": self.queries,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }


_WORD = re.compile(r"\w+")


class RetrievalCache:
    """Retrieved passages of recent queries, reused for the same or a near-duplicate query (RaLMSpec-style reuse
    across turns: a follow-up that repeats or slightly rephrases a question skips the search).

    Keys are lower-cased word sets; a lookup hits an entry with the same set, or one of the ``recent`` most recently
    used entries whose word set has Jaccard similarity >= ``threshold`` with the query's (near-duplicates are
    follow-ups in a conversation, so only recent turns are compared: a lookup stays cheap next to a search). The
    ``max_entries`` most recently used entries are kept. Thread-safe. ``hits``/``misses`` count lookups.
    """

    def __init__(self, max_entries: int = 1024, threshold: float = 0.8, recent: int = 32) -> None:
        if max_entries < 1 or not 0.0 < threshold <= 1.0 or recent < 0:
            raise RAGError(f"cache needs max_entries >= 1, 0 < threshold <= 1 and recent >= 0, got {max_entries}, "
                           f"{threshold}, {recent}")
        self.max_entries, self.threshold, self.recent = max_entries, threshold, recent
        self._entries: OrderedDict[frozenset[str], tuple[str, list[Passage]]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def key(query: str) -> frozenset[str]:
        return frozenset(w.lower() for w in _WORD.findall(query))

    def get(self, query: str, scope: str) -> list[Passage] | None:
        key = self.key(query)
        with self._lock:
            found = self._entries.get(key)
            if found is None or found[0] != scope:
                found = None
                if self.threshold < 1.0 and key:
                    for n, (other, entry) in enumerate(reversed(self._entries.items())):
                        if n >= self.recent:
                            break
                        if entry[0] == scope and len(key & other) / len(key | other) >= self.threshold:
                            found, key = entry, other
                            break
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return list(found[1])  # the stages after retrieval copy passages, never change them in place

    def put(self, query: str, scope: str, passages: Sequence[Passage]) -> None:
        key = self.key(query)
        with self._lock:
            self._entries[key] = (scope, list(passages))
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0


def passage_from_document(doc: Any, score: float) -> Passage:
    """A search hit as a passage: a passage collection's entry keeps its document id and span."""
    meta = dict(doc.metadata)
    if all(k in meta for k in _PASSAGE_KEYS):
        doc_id, start, end = meta.pop(PASSAGE_OF), int(meta.pop(PASSAGE_START)), int(meta.pop(PASSAGE_END))
        if PASSAGE_HEADING in meta:
            meta["heading"] = meta.pop(PASSAGE_HEADING)
        return Passage(id=doc.id, doc_id=str(doc_id), text=doc.text, score=score, start=start, end=end,
                       title=doc.title, metadata=meta)
    return Passage(id=doc.id, doc_id=doc.id, text=doc.text, score=score, start=0, end=len(doc.text),
                   title=doc.title, metadata=meta)


def parse_compress(spec: str) -> tuple[str, dict[str, Any]]:
    """The scorer and ``SentenceCompressor`` options of a compress spec: ``"lexical"`` / ``"dense"`` with an optional
    ``:N`` (keep the N best sentences of each passage) or ``:R`` with 0 < R <= 1 (keep that fraction)."""
    try:
        return parse_compressor(spec)
    except CompressionError as exc:
        raise RAGError(str(exc)) from None


def _compressor(spec: str | SentenceCompressor | None, collection: SearchableCollection) -> SentenceCompressor | None:
    """A SentenceCompressor from a ``parse_compress`` spec (dense scoring uses the collection's model)."""
    if spec is None or isinstance(spec, SentenceCompressor):
        return spec
    name, options = parse_compress(spec)
    encoder = collection.encoder() if name == "dense" else None
    return SentenceCompressor(name, encoder=encoder, analyzer=collection.analyzer if name == "lexical" else None,
                              **options)


def _rrf(lists: Sequence[Sequence[Passage]], k: int = 60) -> list[Passage]:
    """Reciprocal-rank fusion of passage lists (multi-query retrieval) by ``retrieval.fusion.rrf``; scores become
    the fused scores. Passages with equal fused scores keep the order of their first appearance (the original
    question's list first), as multi-query retrieval always has."""
    first: dict[str, Passage] = {}
    for passages in lists:
        for p in passages:
            first.setdefault(p.id, p)
    width = max((len(p) for p in lists), default=0)
    if not width:
        return []
    ids = np.full((len(lists), width), None, dtype=object)
    scores = np.full((len(lists), width), -np.inf, dtype=np.float32)
    for row, passages in enumerate(lists):
        for col, p in enumerate(passages):
            ids[row, col], scores[row, col] = p.id, 1.0  # only the ranks count
    fused = rrf([SearchResults(ids[row:row + 1], scores[row:row + 1]) for row in range(len(lists))], k=k).hits(0)
    order = {pid: n for n, pid in enumerate(first)}
    fused.sort(key=lambda hit: (-hit[1], order[hit[0]]))
    return [replace(first[pid], score=score) for pid, score in fused]


class RAG:
    """Answer questions from a collection.

    Defaults are those of ``retrievekit.rag.config.RAGConfig``.
    ``mode``: search mode (default hybrid when the collection has a dense index, else bm25); ``depth``: passages
    retrieved; ``selector``: a ``retrievekit.rag.selection`` spec or Selector (default ``"gap+budget:1024"``:
    score-gap cut, then at most 1,024 tokens); ``compress``: None, ``"lexical[:N|:ratio]"`` or
    ``"dense[:N|:ratio]"`` sentence-level extraction; ``generator``: a Generator, a spec (``"local"``,
    ``"openai:MODEL@URL"``) or None (contexts only; ``ask`` then answers with the contexts and no text);
    ``template``: prompt template (default: what the generator's ``prompt_style`` asks for — ``"completion"`` for
    base models such as the local gemma, chat messages otherwise);
    ``expand``: None, ``"multi-query[:N]"`` (the generator rewrites the question N times, results fused by RRF),
    ``"hyde"`` (search with a generated hypothetical answer passage too) or a callable question -> extra queries;
    ``allow``: source allow-list (document ids, a metadata mapping such as ``{"source": ["wiki"]}``, or a
    predicate); ``drop_flagged``: leave out passages flagged as prompt injection or poisoning (default: keep them,
    flagged, wrapped as data); ``cache``: a RetrievalCache, True (default, a fresh one) or False;
    ``require_citations`` (default True): an answer that cites no source is withheld — the answer becomes "I don't
    know" and the generated text is kept in ``Answer.unsupported``.
    """

    def __init__(
        self,
        collection: SearchableCollection,
        *,
        mode: str | None = _D.mode,
        depth: int = _D.depth,
        selector: str | Selector = _D.selector,
        compress: str | SentenceCompressor | None = _D.compress,
        generator: str | Generator | None = None,
        template: str | None = _D.template,
        instruction: str | None = _D.instruction,
        expand: str | Callable[[str], list[str]] | None = _D.expand,
        allow: Any = None,
        drop_flagged: bool = _D.drop_flagged,
        safety: bool = _D.safety,
        cache: RetrievalCache | bool = True,
        filter: Filter | None = None,
        max_tokens: int = _D.max_tokens,
        require_citations: bool = _D.require_citations,
        search_options: Mapping[str, Any] | None = None,
    ) -> None:
        if depth < 1:
            raise RAGError(f"depth must be >= 1, got {depth}")
        self.collection = collection
        self.mode = mode or collection.default_mode
        self.depth = depth
        embed = None
        if isinstance(selector, str) and "mmr" in selector:  # diversity needs passage embeddings
            if not collection.config.get("dense"):
                raise RAGError(f"selector {selector!r} (MMR) needs a dense index; add one with "
                               "Collection.add_dense_index or use top/gap/budget")
            embed = collection.encoder()
        self.selector = get_selector(selector, embed=embed)
        self.compressor = _compressor(compress, collection)
        self._focus: SentenceCompressor | None = None  # scores the chunks of long documents (built on first use)
        self.generator = self._generator(generator)
        style = getattr(self.generator, "prompt_style", "chat")  # base models continue text, chat models answer
        self.template = template or ("completion" if style == "completion" else "default")
        self.instruction = instruction
        self.expand = expand
        self.allow = allow
        self.drop_flagged = drop_flagged
        self.safety = safety
        self.cache = RetrievalCache() if cache is True else (cache or None)
        self.filter = filter
        self.max_tokens = max_tokens
        self.require_citations = require_citations
        self.search_options = dict(search_options or {})

    @staticmethod
    def _generator(spec: str | Generator | None) -> Generator | None:
        if spec is None:
            return None
        from retrievekit.rag.generators.base import get_generator

        return get_generator(spec)

    # -- stages ----------------------------------------------------------------------------------------------
    def queries(self, question: str) -> list[str]:
        """The question and any rewrites the expansion adds."""
        if self.expand is None:
            return [question]
        if callable(self.expand):
            return [question, *[q for q in self.expand(question) if q.strip()]]
        name, _, arg = self.expand.partition(":")
        if self.generator is None:
            raise RAGError(f"expand={self.expand!r} needs a generator")
        if name == "multi-query":
            n = int(arg or 3)
            text = self.generator.generate(
                f"Write {n} different search queries for the question, one per line, nothing else.\n"
                f"Question: {question}\nQueries:\n", max_tokens=24 * n, stop=["\n\n"])
            rewrites = [re.sub(r"^\s*(?:\d+[.)]|[-*])\s*", "", line).strip() for line in text.splitlines()]
            return [question, *[r for r in rewrites if r][:n]]
        if name == "hyde":
            passage = self.generator.generate(f"Write a short passage that answers the question.\n"
                                              f"Question: {question}\nPassage:", max_tokens=96, stop=["\n\n"])
            return [question, f"{question} {passage.strip()}"]
        raise RAGError(f"unknown expansion {self.expand!r}: use 'multi-query[:N]', 'hyde' or a callable")

    def _search(self, queries: Sequence[str]) -> list[list[Passage]]:
        results = self.collection.search(list(queries), k=self.depth, mode=self.mode, filter=self.filter,
                                         **self.search_options)
        out = []
        for i in range(len(queries)):
            out.append([passage_from_document(d, float(s)) for d, s in self.collection.hit_documents(results, i)])
        return out

    def retrieve(self, question: str) -> tuple[list[Passage], bool, list[str]]:
        """Passages for the question, best first: (passages, served from the cache, queries searched)."""
        scope = ""
        if self.cache is not None:  # a cached list is reused only for the same search of the same commit
            scope = repr((str(self.collection.path), self.collection.snapshot().generation, self.mode, self.depth,
                          self.filter, sorted(self.search_options.items())))
            cached = self.cache.get(question, scope)
            if cached is not None:
                return cached, True, [question]
        queries = self.queries(question)
        lists = self._search(queries)
        passages = lists[0] if len(lists) == 1 else _rrf(lists)[: self.depth]
        if self.cache is not None:
            self.cache.put(question, scope, passages)
        return passages, False, queries

    def contexts(self, question: str, passages: Sequence[Passage]) -> list[Passage]:
        """Narrow long whole documents to their relevant chunks (``rag.focus``), guard, select and compress
        retrieved passages; those of documents with ``path``/``start_line``/``end_line`` metadata (code) or pages
        (PDF, slides) get their file ``location``."""
        if self._focus is None:
            self._focus = SentenceCompressor("lexical", analyzer=getattr(self.collection, "analyzer", None))
        chosen = focus_long_documents(question, passages, self._focus)
        if self.allow is not None:
            chosen = allow_list(chosen, self.allow)
        if self.safety:
            chosen = annotate(chosen)
            if self.drop_flagged:
                chosen = [p for p in chosen if not p.flags]
        chosen = self.selector.select(question, chosen)
        if self.compressor is not None and chosen:
            chosen = self.compressor.compress(question, chosen)
        return locate_passages(chosen, passages)

    def ask(self, question: str) -> Answer:
        if not isinstance(question, str) or not question.strip():
            raise RAGError("the question is empty")
        timings: dict[str, float] = {}
        started = time.perf_counter()
        passages, cached, queries = self.retrieve(question)
        timings["retrieve"] = time.perf_counter() - started
        mark = time.perf_counter()
        contexts = self.contexts(question, passages)
        timings["select"] = time.perf_counter() - mark
        if self.generator is None:
            return Answer(question, "", [], contexts, unknown=not contexts, retrieval_cached=cached,
                          timings=timings, queries=queries)
        if not contexts:  # nothing to answer from: do not let the model guess
            return Answer(question, UNKNOWN_ANSWER, [], [], unknown=True, retrieval_cached=cached, timings=timings,
                          queries=queries)
        instruction = self.instruction
        if self.safety:  # retrieved text goes in as tagged data, and the model is told what the tags mean
            from retrievekit.rag.prompts import DEFAULT_INSTRUCTION

            instruction = f"{instruction or DEFAULT_INSTRUCTION} {DATA_NOTICE.format(tag='data')}"
        prompt, source_map = build_prompt(question, contexts, self.template, instruction,
                                          wrap=wrap_as_data if self.safety else (lambda t: t))
        mark = time.perf_counter()
        stop = list(COMPLETION_STOP) if self.template == "completion" else None
        text = self.generator.generate(prompt, max_tokens=self.max_tokens, stop=stop).strip()
        timings["generate"] = time.perf_counter() - mark
        attributed = False
        if self.template == "completion" and not is_unknown(text):
            # Small base models answer from the sources but rarely write [n]: attribute uncited sentences to the
            # source they mostly copy (marked in the answer's JSON as citations_attributed).
            cited = add_missing_citations(text, source_map)
            attributed, text = cited != text, cited
        citations = parse_citations(text, source_map)
        unsupported = None
        if self.require_citations and not citations and not is_unknown(text):
            unsupported, text = text, UNKNOWN_ANSWER  # nothing ties the answer to the sources
        return Answer(question, text, citations, contexts, unknown=is_unknown(text), retrieval_cached=cached,
                      timings=timings, queries=queries, attributed=attributed, unsupported=unsupported)
