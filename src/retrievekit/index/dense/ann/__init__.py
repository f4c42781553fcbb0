"""Approximate nearest-neighbour indexes for dense retrieval (FAISS HNSW, IVF-Flat, IVF-PQ; extra ``ann``).

    index = get_ann("hnsw:m=32,ef=128")
    index.build(vectors)                      # float32 (n, d), normalised by the caller
    docs, scores = index.search(queries, 10, allowed=mask)
    index.save(folder); index = load_ann(folder)
"""

from retrievekit.index.dense.ann.base import ANNError, ANNIndex, load_ann
from retrievekit.index.dense.ann.faiss_ann import HNSWIndex, IVFIndex, available_ann, get_ann

__all__ = ["ANNError", "ANNIndex", "HNSWIndex", "IVFIndex", "available_ann", "get_ann", "load_ann"]
