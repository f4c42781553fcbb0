"""Model cards, backend names, the embedding cache and encoder-spec checks (no model is loaded here)."""

from __future__ import annotations

import numpy as np
import pytest
from toy_encoder import ToyEncoder

from retrievekit import RetrievekitError
from retrievekit.encoders import EncoderMismatchError, check_compatible, get_encoder, model_card
from retrievekit.encoders.cache import EmbeddingCache, encode_with_cache


def test_model_cards_carry_prompts_and_pooling():
    e5 = model_card("intfloat/e5-small-v2")
    assert e5 is model_card("e5-small-v2") and (e5.query_prompt, e5.document_prompt) == ("query: ", "passage: ")
    bge = model_card("BGE-small-en-v1.5")
    assert bge.pooling == "cls" and bge.query_prompt.startswith("Represent this sentence") and not bge.document_prompt
    minilm = model_card("minilm")
    assert minilm.name == "sentence-transformers/all-MiniLM-L6-v2" and minilm.dim == 384 and minilm.max_length == 256
    assert model_card("no-such-model") is None


def test_backend_names():
    assert get_encoder("toy:abc").spec()["model"] == "abc"
    assert get_encoder("toy").spec()["model"] == "toy"  # a backend alone: its default model
    enc = ToyEncoder("x")
    assert get_encoder(enc) is enc
    assert get_encoder(enc.spec()).spec() == enc.spec()  # a stored spec rebuilds the same encoder


def test_mismatch_names_every_differing_field():
    a = ToyEncoder("m").spec()
    check_compatible(a, {**a, "backend": "onnx"})  # same function, another backend: fine
    with pytest.raises(EncoderMismatchError, match=r"dim.*normalize|normalize.*dim"):
        check_compatible(a, {**a, "dim": 32, "normalize": False})


def test_embedding_cache_round_trip_and_dedup(tmp_path):
    enc = ToyEncoder("m", dim=8)
    cache = EmbeddingCache(tmp_path, enc.spec())
    texts = ["a b", "c", "a b", "d e f"]
    ToyEncoder.calls = 0
    first = encode_with_cache(enc.encode, texts, 8, cache, flush_every=2)
    assert ToyEncoder.calls == 3  # the repeated text is encoded once
    assert np.allclose(first[0], first[2])
    again = encode_with_cache(enc.encode, texts, 8, EmbeddingCache(tmp_path, enc.spec()))
    assert ToyEncoder.calls == 3 and np.array_equal(first, again)
    # A different encoder configuration never reads these vectors.
    other = EmbeddingCache(tmp_path, {**enc.spec(), "query_prompt": "q: "})
    assert len(other) == 0


def test_bad_chunking_is_a_clear_error():
    from retrievekit.index.dense.embedding import Chunking

    with pytest.raises(RetrievekitError, match="TOKENS"):
        Chunking.parse("lots")
    with pytest.raises(RetrievekitError, match="pooling"):
        Chunking.parse("256:32:median")
