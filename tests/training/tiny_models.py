"""Tiny models built in the test (2-layer BERT, 32 wide, a WordPiece vocabulary of the toy task's words) and the toy
task itself: ``capital of COUNTRY`` → the document naming its capital city, which shares no word with the query, so
an untrained model is at chance and a trained one has to learn the pairing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PAIRS = [("france", "paris"), ("germany", "berlin"), ("italy", "rome"), ("spain", "madrid"), ("japan", "tokyo"),
         ("egypt", "cairo"), ("peru", "lima"), ("kenya", "nairobi"), ("norway", "oslo"), ("greece", "athens"),
         ("chile", "santiago"), ("cuba", "havana")]
TRAIN_TEMPLATES = ("capital of {}", "{} capital", "the capital city of {}")
HELD_OUT_TEMPLATE = "which city governs {}"  # other words around the same country: held-out queries
DOC_TEMPLATE = "{} city"
WORDS = sorted({w for c, k in PAIRS for w in (c, k)} | set((" ".join(TRAIN_TEMPLATES) + " " + HELD_OUT_TEMPLATE + " "
                                                            + DOC_TEMPLATE).replace("{}", "").split()))
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]


def doc(city: str) -> str:
    return DOC_TEMPLATE.format(city)


def train_examples(n_negatives: int = 2) -> list[dict[str, object]]:
    """One example per pair and template: query, its city's document, the next ``n_negatives`` cities' documents."""
    out = []
    for template in TRAIN_TEMPLATES:
        for i, (country, city) in enumerate(PAIRS):
            negatives = [doc(PAIRS[(i + j) % len(PAIRS)][1]) for j in range(1, n_negatives + 1)]
            out.append({"query": template.format(country), "positive": doc(city), "negatives": negatives})
    return out


def held_out() -> tuple[list[str], list[str]]:
    """Held-out queries and, in the same order, the documents (all cities) they should find first."""
    return [HELD_OUT_TEMPLATE.format(c) for c, _ in PAIRS], [doc(k) for _, k in PAIRS]


def _bert(folder: Path, *, seed: int, classifier: bool, init_range: float = 0.02) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=1,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=init_range)
    (BertForSequenceClassification if classifier else BertModel)(config).save_pretrained(folder)
    BertTokenizer(vocab=str(vocab)).save_pretrained(folder)


def tiny_bi_encoder(folder: Path, *, seed: int = 0) -> Path:
    """A sentence-transformers folder: tiny BERT + mean pooling."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    raw = folder.with_name(folder.name + "-raw")
    _bert(raw, seed=seed, classifier=False)
    SentenceTransformer(modules=[Transformer(str(raw), max_seq_length=32), Pooling(32, "mean")],
                        device="cpu").save(str(folder))
    return folder


def tiny_bert(folder: Path, *, seed: int = 0, init_range: float = 0.02) -> Path:
    """A plain Hugging Face BERT folder (no head): an encoder checkpoint to start a cross-encoder from."""
    _bert(folder, seed=seed, classifier=False, init_range=init_range)
    return folder


def recall_at_1(scores: np.ndarray) -> float:
    """scores[i, j] = query i vs document j; document i is query i's answer."""
    return float(np.mean(np.argmax(scores, axis=1) == np.arange(len(scores))))


def encoder_held_out_recall(folder: Path) -> float:
    """Recall@1 of a bi-encoder folder on the held-out toy queries (cosine)."""
    from retrievekit.encoders import get_encoder

    encoder = get_encoder(str(folder))
    queries, documents = held_out()
    q, d = encoder.encode(queries), encoder.encode(documents)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return recall_at_1(q @ d.T)
