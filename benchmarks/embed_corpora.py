"""Fill the embedding cache for the English sets (documents and judged queries), so later `retrievekit eval --mode
dense|hybrid` runs skip encoding. Resumable: stop it at any time and run it again.

    python benchmarks/embed_corpora.py [--model minilm] [--sets scifact,cosqa]
"""

from __future__ import annotations

import argparse
import time

from datasets_en import ENGLISH_SETS

from retrievekit.core.document import index_text
from retrievekit.encoders import get_encoder
from retrievekit.encoders.cache import EmbeddingCache, default_cache_root
from retrievekit.evaluation import load_beir
from retrievekit.index.dense.embedding import embed_documents, embed_queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--sets", default=",".join(ENGLISH_SETS))
    args = parser.parse_args()
    encoder = get_encoder(args.model)
    cache = EmbeddingCache(default_cache_root(), encoder.spec())
    for name in args.sets.split(","):
        folder, split, corpus = ENGLISH_SETS[name]
        ds = load_beir(folder, split=split, corpus=corpus)
        texts = [index_text(d, ["title", "text"]) for d in ds.iter_corpus()]
        started = time.perf_counter()
        embed_documents(encoder, texts, cache=cache, progress=True)
        embed_queries(encoder, list(ds.queries.values()), cache=cache)
        print(f"{name}: {len(texts)} documents, {len(ds.queries)} queries in {time.perf_counter() - started:.0f} s",
              flush=True)


if __name__ == "__main__":
    main()
