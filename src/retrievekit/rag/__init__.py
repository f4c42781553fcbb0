"""Retrieval-augmented generation: chunk -> retrieve -> select -> compress -> generate with citations.

    from retrievekit import Collection
    col = Collection.create("docs", passages="sentences:128")   # store documents as linked passages
    col.ingest("corpus.jsonl")
    answer = col.ask("who wrote it?", generator="local", compress="lexical")
    answer.answer, answer.citations, answer.contexts

Modules: ``chunking`` (token/sentence/paragraph/Markdown/HTML/semantic chunkers with character offsets),
``selection`` (top-k, score-gap, MMR, token budget), ``compression`` (sentence-level extraction), ``safety``
(prompt-injection flags, near-duplicate/poisoning detection, allow-lists, data marking), ``prompts`` (numbered
sources, citation parsing), ``generators`` (OpenAI-compatible HTTP, local gemma-3-270m), ``pipeline`` (``RAG``).
"""

from retrievekit.rag.config import RAGConfig
from retrievekit.rag.pipeline import RAG, Answer, RAGError, RetrievalCache
from retrievekit.rag.types import Chunk, Passage, count_tokens

__all__ = ["RAG", "Answer", "Chunk", "Passage", "RAGConfig", "RAGError", "RetrievalCache", "count_tokens"]
