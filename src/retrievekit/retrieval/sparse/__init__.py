"""Learned sparse retrieval (SPLADE): weighted wordpiece terms in a per-segment inverted index, impact scoring."""
