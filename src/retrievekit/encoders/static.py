"""Static embedding backends: one vector per token, averaged. No transformer runs, so encoding is very fast.

* ``WordLlamaEncoder``: WordLlama token embeddings (default ``l2_supercat``, 256-d, shipped inside the package).
* ``Model2VecEncoder``: a model2vec ``StaticModel`` (a local folder, e.g. one made by
  ``retrievekit.encoders.distill.distill``, or a hub name).

Both average the token vectors of the first ``max_length`` tokens and L2-normalise. WordLlama's Llama-2 tokenizer
is run word by word through a cache (``SpaceSplitTokens``) and the vectors summed as one sparse product: the same
ids and vectors as whole-text tokenisation, several times faster. ``truncate_dim`` keeps the first
dimensions only (Matryoshka / PCA-ordered models); it is part of the spec so an index rebuilds the same encoder.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from retrievekit.core.errors import RetrievekitError, require
from retrievekit.encoders.base import Encoder

logger = logging.getLogger(__name__)

STATIC_POOLING = "static"


def _check_pooling(pooling: str | None, backend: str) -> None:
    if pooling not in (None, STATIC_POOLING):
        raise RetrievekitError(f"the {backend} encoder averages static token vectors; pooling must be "
                               f"{STATIC_POOLING!r}, got {pooling!r}")


class _StaticEncoder(Encoder):
    """Shared settings and spec of the static backends."""

    name: str
    truncate_dim: int | None
    _tokenizer: Any  # a ``tokenizers.Tokenizer``

    def _settings(self, query_prompt: str | None, document_prompt: str | None, normalize: bool | None,
                  max_length: int | None, truncate_dim: int | None) -> None:
        self.query_prompt = query_prompt or ""
        self.document_prompt = document_prompt or ""
        self.normalize = True if normalize is None else bool(normalize)
        self.max_length = int(max_length or 512)
        if self.max_length < 1:
            raise RetrievekitError(f"max_length must be a positive number of tokens, got {max_length}")
        if truncate_dim is not None and truncate_dim < 1:
            raise RetrievekitError(f"truncate_dim must be a positive dimension, got {truncate_dim}")
        self.truncate_dim = truncate_dim

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"backend": self.backend, "model": self.name, "query_prompt": self.query_prompt,
                                "document_prompt": self.document_prompt, "pooling": STATIC_POOLING,
                                "normalize": self.normalize, "dim": self.dim, "max_length": self.max_length}
        if self.truncate_dim is not None:
            spec["truncate_dim"] = self.truncate_dim
        return spec

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [tuple(span) for span in self._tokenizer.encode(text, add_special_tokens=False).offsets]


class WordLlamaEncoder(_StaticEncoder):
    """WordLlama static embeddings. ``model`` is a WordLlama config name (``l2_supercat``, ``l3_supercat``).

    ``cache_dir=None`` loads only what the wordllama package ships (no network: ``l2_supercat`` at 256 dims);
    with a ``cache_dir`` wordllama may download other configs and dimensions there.
    """

    backend = "wordllama"

    def __init__(
        self,
        model: str = "l2_supercat",
        *,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        pooling: str | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        truncate_dim: int | None = None,
        weights_dim: int = 256,
        cache_dir: str | Path | None = None,
    ) -> None:
        _check_pooling(pooling, self.backend)
        self._settings(query_prompt, document_prompt, normalize, max_length, truncate_dim)
        wordllama = _import_quietly("wordllama")
        self.name = model or "l2_supercat"
        known = wordllama.WordLlama.list_configs().get("wordllama", [])
        if known and self.name not in known:
            raise RetrievekitError(f"unknown WordLlama model {self.name!r}; choose one of {', '.join(known)}")
        offline = cache_dir is None
        try:
            wl = wordllama.WordLlama.load(
                config=self.name, dim=weights_dim,
                trunc_dim=truncate_dim if truncate_dim != weights_dim else None,
                cache_dir=Path(wordllama.__file__).parent if offline else Path(cache_dir).expanduser(),  # type: ignore[arg-type]
                disable_download=offline)
        except FileNotFoundError as exc:
            hint = " (pass cache_dir= to let wordllama download it)" if offline else ""
            raise RetrievekitError(f"cannot load WordLlama {self.name!r} at {weights_dim} dims: {exc}{hint}") from exc
        except ValueError as exc:  # unsupported dims; the message lists the valid ones
            raise RetrievekitError(f"cannot load WordLlama {self.name!r}: {exc}") from exc
        self._embedding = np.ascontiguousarray(wl.embedding, dtype=np.float32)
        self._tokenizer = wl.tokenizer
        self._tokenizer.no_truncation()  # truncated per text below, spans stay whole-text
        self._tokenizer.no_padding()
        self._words = SpaceSplitTokens.for_tokenizer(self._tokenizer)
        if self._words is not None:  # no padding to pay for: batches as large as memory-cheap
            self.token_budget = 1 << 20
        self._dim = int(self._embedding.shape[1])

    @property
    def dim(self) -> int:
        return self._dim

    def _tokenize(self, texts: list[str]) -> tuple[Any, Any] | None:
        if self._words is None:
            return None
        ids, lengths = self._words.token_ids(texts, self.max_length)
        starts = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=starts[1:])
        return (ids, starts), lengths

    def _encode_tokens(self, tokens: Any, idx: list[int]) -> np.ndarray:
        ids, starts = tokens
        rows = np.asarray(idx, dtype=np.int64)
        lengths = starts[rows + 1] - starts[rows]
        # the rows' ids gathered back to back: a (texts x vocabulary) count matrix times the embedding is the sum
        # of each text's token vectors without a padded (texts x tokens x dim) gather
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        picked = ids[np.repeat(starts[rows] - indptr[:-1], lengths) + np.arange(indptr[-1])]
        picked = np.minimum(picked, len(self._embedding) - 1)  # as the whole-text path: ids past the table clip
        counts = scipy.sparse.csr_matrix((np.ones(len(picked), dtype=np.float32), picked, indptr),
                                         shape=(len(rows), len(self._embedding)))
        return np.asarray(counts @ self._embedding) / np.maximum(lengths, 1)[:, None].astype(np.float32)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        """Whole-text tokenisation: the path for tokenizers ``SpaceSplitTokens`` does not cover."""
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        width = max((min(len(e.ids), self.max_length) for e in encodings), default=0)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.float32)
        for row, e in enumerate(encodings):
            kept = e.ids[: self.max_length]
            ids[row, : len(kept)] = kept
            mask[row, : len(kept)] = 1.0
        np.clip(ids, 0, len(self._embedding) - 1, out=ids)
        # (batch, seq) @ gathered (batch, seq, dim) -> masked sum without materialising a product tensor
        summed = np.einsum("bs,bsd->bd", mask, self._embedding[ids])
        return summed / np.maximum(mask.sum(axis=1, keepdims=True), 1.0)


class SpaceSplitTokens:
    """Exact token ids of a SentencePiece-style BPE tokenizer, computed word by word with a cache.

    Llama-2's tokenizer (WordLlama's) has no pre-tokenizer: its normaliser turns every space into ``▁`` and BPE
    then runs over the whole text, so the tokenizers library's per-word cache never applies and each passage is
    merged from scratch. When no vocabulary token has a ``▁`` after another character, no merge can cross the start
    of a ``▁``-led word, so a text's ids are its space-separated words' ids back to back: each distinct word is
    tokenised once (many new words per call, joined into a few long strings so the Rust tokenizer runs them on
    all cores) and reused. ``for_tokenizer`` checks those conditions and returns None when they do not hold.
    Texts this split cannot reproduce exactly (empty, repeated/leading/trailing spaces, a literal ``▁``) go
    through the whole-text tokenizer.
    """

    #: distinct words remembered before the cache starts over (~35 MB)
    max_words = 1 << 18
    _words_per_string = 1024
    _texts_per_slice = 4096

    def __init__(self, tokenizer: Any) -> None:
        from tokenizers import Regex, Tokenizer, pre_tokenizers

        self._whole = tokenizer
        self._by_word = Tokenizer.from_str(tokenizer.to_str())
        self._by_word.normalizer = None  # words arrive normalised: "▁" + word
        self._by_word.pre_tokenizer = pre_tokenizers.Split(Regex("▁+[^▁]*|[^▁]+"), behavior="isolated")
        self._by_word.no_padding()
        self._by_word.no_truncation()
        self._ids: dict[str, bytes] = {}  # word -> its int32 ids as bytes, so a text's ids are one bytes join
        self._lock = threading.Lock()

    @classmethod
    def for_tokenizer(cls, tokenizer: Any) -> SpaceSplitTokens | None:
        try:
            config = json.loads(tokenizer.to_str())
        except Exception:  # a tokenizer that cannot describe itself gets the whole-text path
            return None
        model = config.get("model") or {}
        normalizer = config.get("normalizer") or {}
        steps = normalizer.get("normalizers") if normalizer.get("type") == "Sequence" else None
        metaspace = steps == [{"type": "Prepend", "prepend": "▁"},
                              {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]
        if not (metaspace and config.get("pre_tokenizer") is None and model.get("type") == "BPE"
                and not model.get("dropout")):
            return None
        vocab = model.get("vocab") or {}
        if any(_INNER_METASPACE.search(token) for token in vocab):
            return None
        # unknown characters must become byte tokens, not <unk>s that fuse_unk would join across words
        if model.get("fuse_unk") and not (model.get("byte_fallback")
                                          and all(f"<0x{b:02X}>" in vocab for b in range(256))):
            return None
        return cls(tokenizer)

    def token_ids(self, texts: list[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
        """(every text's first ``max_length`` ids back to back as int32, each text's count)."""
        step = self._texts_per_slice
        packed: list[bytes] = []
        with self._lock:
            for start in range(0, len(texts), step):  # slices, so one huge call cannot overfill the cache
                packed += self._packed(texts[start : start + step], 4 * max_length)
        lengths = np.fromiter(map(len, packed), dtype=np.int64, count=len(packed)) // 4
        return np.frombuffer(b"".join(packed), dtype=np.int32), lengths

    def _packed(self, texts: list[str], cut: int) -> list[bytes]:
        words = [_split(text) for text in texts]
        new = {w for split in words if split is not None for w in split if w not in self._ids}
        if len(self._ids) + len(new) > self.max_words:
            self._ids.clear()
            new = {w for split in words if split is not None for w in split}
        if new:
            self._learn(sorted(new))
        known = self._ids.__getitem__
        irregular = [text for text, split in zip(texts, words) if split is None]
        whole = iter(self._whole.encode_batch(irregular, add_special_tokens=False) if irregular else [])
        return [np.asarray(next(whole).ids, dtype=np.int32).tobytes()[:cut] if split is None
                else b"".join(map(known, split))[:cut] for split in words]

    def _learn(self, words: list[str]) -> None:
        step = self._words_per_string
        groups = [words[start : start + step] for start in range(0, len(words), step)]
        encodings = self._by_word.encode_batch(["▁" + "▁".join(group) for group in groups], add_special_tokens=False)
        for group, encoding in zip(groups, encodings):
            per_word: list[list[int]] = [[] for _ in group]
            for token, position in zip(encoding.ids, encoding.word_ids):
                if position is None:
                    raise RetrievekitError("word-by-word tokenisation produced a token of no word")
                per_word[position].append(token)
            if not all(per_word):  # every "▁word" has at least its own token; anything else is a split we missed
                raise RetrievekitError("word-by-word tokenisation lost a word; please report this tokenizer")
            for word, ids in zip(group, per_word):
                self._ids[word] = np.asarray(ids, dtype=np.int32).tobytes()


_INNER_METASPACE = re.compile("[^▁]▁")


def _split(text: str) -> list[str] | None:
    """``text``'s space-separated words, or None where splitting on single spaces would not give its ▁-words."""
    if not text or text[0] == " " or text[-1] == " " or "  " in text or "▁" in text:
        return None
    return text.split(" ")


class Model2VecEncoder(_StaticEncoder):
    """A model2vec ``StaticModel`` from a local folder or hub name."""

    backend = "model2vec"

    def __init__(
        self,
        model: str,
        *,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        pooling: str | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        truncate_dim: int | None = None,
    ) -> None:
        _check_pooling(pooling, self.backend)
        self._settings(query_prompt, document_prompt, normalize, max_length, truncate_dim)
        model2vec = _import_quietly("model2vec")
        path = Path(model).expanduser()
        self.name = str(path.resolve()) if path.is_dir() else model
        try:
            self._model = model2vec.StaticModel.from_pretrained(self.name, force_download=False,
                                                                dimensionality=truncate_dim)
        except (OSError, ValueError) as exc:
            raise RetrievekitError(f"cannot load the model2vec model {model!r}: {exc}. Give a folder saved by "
                                   "StaticModel.save_pretrained (e.g. `retrievekit distill`) or a reachable hub "
                                   "name") from exc
        self._tokenizer = self._model.tokenizer
        self._dim = int(self._model.dim)

    @property
    def dim(self) -> int:
        return self._dim

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(texts, max_length=self.max_length, normalize=False, batch_size=len(texts),
                                     use_multiprocessing=False)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self._dim)


def _import_quietly(module: str) -> Any:
    """``require`` the module, undoing any root-logger setup it does on import (wordllama calls basicConfig)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return require(module, "static")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
