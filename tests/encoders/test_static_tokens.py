"""WordLlama's word-by-word tokenisation (``SpaceSplitTokens``): the same ids and vectors as whole-text tokenisation."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("wordllama")

from retrievekit.encoders.base import normalize_rows
from retrievekit.encoders.registry import get_encoder
from retrievekit.encoders.static import SpaceSplitTokens

# texts the single-space split cannot take, byte-fallback characters, other whitespace, truncation
AWKWARD = ["", " ", "  two leading", "a  b", "trailing ", " leading", "tab\tseparated words", "new\nline",
           "a literal ▁ and lit▁eral", "emoji 😀 🤖x", "数学 中文 テスト", "x" * 3000, " ".join(["word"] * 900),
           "a " * 700, "\u00a0no-break\u00a0space", "CAPS mixed123 4.5e-3 (ok)", "é́ combining", "\r\n\r\n end"]


@pytest.fixture(scope="module")
def encoder():
    enc = get_encoder("wordllama")
    assert enc._words is not None, "WordLlama's Llama-2 tokenizer should take the word-by-word path"
    return enc


def whole_text_ids(encoder, texts: list[str], max_length: int) -> list[list[int]]:
    return [e.ids[:max_length] for e in encoder._tokenizer.encode_batch(texts, add_special_tokens=False)]


def split_ids(words: SpaceSplitTokens, texts: list[str], max_length: int) -> list[list[int]]:
    ids, lengths = words.token_ids(texts, max_length)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    return [ids[starts[i]:starts[i + 1]].tolist() for i in range(len(texts))]


def corpus_texts(path: Path, limit: int) -> list[str]:
    texts = []
    with path.open(encoding="utf-8") as f:
        for line, _ in zip(f, range(limit)):
            doc = json.loads(line)
            texts.append(f"{doc.get('title', '')} {doc['text']}".strip())
    return texts


def test_ids_match_whole_text_tokenisation_on_awkward_texts(encoder):
    for max_length in (512, 7):
        assert split_ids(encoder._words, AWKWARD, max_length) == whole_text_ids(encoder, AWKWARD, max_length)


def test_ids_and_vectors_match_on_real_passages(encoder, data_dir: Path):
    texts = corpus_texts(data_dir / "scifact" / "corpus.jsonl", 600)
    texts += corpus_texts(data_dir / "cacm" / "corpus.jsonl", 300)
    assert split_ids(encoder._words, texts, 512) == whole_text_ids(encoder, texts, 512)
    fast = encoder.encode_documents(texts + AWKWARD)
    slow = np.vstack([encoder._encode_batch(texts[i:i + 64]) for i in range(0, len(texts), 64)]
                     + [encoder._encode_batch(AWKWARD)])
    normalize_rows(slow)
    np.testing.assert_allclose(fast, slow, atol=1e-6)


def test_a_full_cache_starts_over_without_changing_results(encoder):
    texts = [f"passage {i} about topic{i % 37} and word{i * 7919 % 1000} with numbers {i}.{i}" for i in range(400)]
    expected = whole_text_ids(encoder, texts, 512)
    small = SpaceSplitTokens(encoder._tokenizer)
    small.max_words, small._texts_per_slice = 60, 5
    most_per_slice = max(len({w for t in texts[i:i + 5] for w in t.split(" ")}) for i in range(0, len(texts), 5))
    for _ in range(2):
        assert split_ids(small, texts, 512) == expected
        assert 0 < len(small._ids) <= 60 + most_per_slice


def test_concurrent_callers_get_the_same_vectors(encoder):
    texts = [f"thread text {i} on subject{i % 13} with a rare token zq{i}x" for i in range(300)]
    expected = get_encoder("wordllama").encode_documents(texts)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(encoder.encode_documents(texts))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and len(results) == 4
    for result in results:
        np.testing.assert_array_equal(result, expected)


def test_tokenizers_the_split_cannot_reproduce_keep_the_whole_text_path(encoder):
    from tokenizers import Tokenizer

    config = json.loads(encoder._tokenizer.to_str())
    vocab = config["model"]["vocab"]
    config["model"]["vocab"] = {**vocab, "a▁b": len(vocab)}  # a token spanning a word start: merges may cross
    assert SpaceSplitTokens.for_tokenizer(Tokenizer.from_str(json.dumps(config))) is None
    bert = Tokenizer.from_str(json.dumps({**json.loads(encoder._tokenizer.to_str()), "normalizer": None}))
    assert SpaceSplitTokens.for_tokenizer(bert) is None
    assert SpaceSplitTokens.for_tokenizer(encoder._tokenizer) is not None
