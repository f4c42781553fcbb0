"""The decoupled softmax loss: equal to a hand computation on fixed embeddings, the same through a model's forward
pass, and good enough to teach a tiny BERT the toy task through ``train_encoder(loss="decoupled")``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
pytest.importorskip("datasets")

import torch
from tiny_models import encoder_held_out_recall, tiny_bi_encoder, train_examples

from retrievekit.training._deps import read_card
from retrievekit.training.encoder_training import train_encoder
from retrievekit.training.losses import DecoupledSoftmaxLoss

ANCHORS = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]
POSITIVES = [[0.8, 0.6, 0.0], [0.3, 1.0, 0.2]]
HARD = [[0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]


def by_hand(anchors: list[list[float]], columns: list[list[list[float]]], scale: float) -> list[float]:
    """Per anchor, with loops: -s(q_i, p_i) + log of the sum over every other document d of exp(s(q_i, d))."""
    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

    documents = [d for column in columns for d in column]  # positives first, then each negative column
    rows = []
    for i, a in enumerate(anchors):
        others = [scale * cos(a, d) for j, d in enumerate(documents) if j != i]
        rows.append(-scale * cos(a, documents[i]) + math.log(sum(math.exp(s) for s in others)))
    return rows


@pytest.mark.parametrize("scale", [1.0, 20.0])
def test_loss_equals_a_hand_computation(scale: float) -> None:
    loss = DecoupledSoftmaxLoss(model=None, scale=scale)
    tensors = [torch.tensor(x) for x in (ANCHORS, POSITIVES, HARD)]
    got = float(loss.compute_loss_from_embeddings(tensors))
    assert got == pytest.approx(np.mean(by_hand(ANCHORS, [POSITIVES, HARD], scale)), rel=1e-5)
    # in-batch only (no hard negative column): the other anchor's positive is the only negative
    pairs_only = float(loss.compute_loss_from_embeddings(tensors[:2]))
    assert pairs_only == pytest.approx(np.mean(by_hand(ANCHORS, [POSITIVES], scale)), rel=1e-5)


def test_it_is_infonce_without_the_positive_in_the_denominator() -> None:
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    tensors = [torch.tensor(x) for x in (ANCHORS, POSITIVES, HARD)]
    infonce = float(MultipleNegativesRankingLoss(None, scale=20.0).compute_loss_from_embeddings(tensors, None))
    # per anchor, InfoNCE = log(1 + exp(decoupled)): its denominator is the decoupled one plus the positive's term
    rows = by_hand(ANCHORS, [POSITIVES, HARD], 20.0)
    assert infonce == pytest.approx(np.mean([math.log1p(math.exp(d)) for d in rows]), rel=1e-5)
    assert float(DecoupledSoftmaxLoss(None, 20.0).compute_loss_from_embeddings(tensors)) < infonce


def test_gradient_and_the_lone_anchor() -> None:
    anchors = torch.tensor(ANCHORS, requires_grad=True)
    loss = DecoupledSoftmaxLoss(model=None, scale=20.0)
    value = loss.compute_loss_from_embeddings([anchors, torch.tensor(POSITIVES), torch.tensor(HARD)])
    value.backward()
    assert anchors.grad is not None and torch.isfinite(anchors.grad).all() and anchors.grad.abs().sum() > 0
    # a batch of one pair has no negative: zero loss and zero gradient, never -inf or NaN
    lone = torch.tensor(ANCHORS[:1], requires_grad=True)
    value = loss.compute_loss_from_embeddings([lone, torch.tensor(POSITIVES[:1])])
    value.backward()
    assert float(value.detach()) == 0.0 and lone.grad is not None and float(lone.grad.abs().sum()) == 0.0
    with pytest.raises(ValueError, match="scale must be > 0"):
        DecoupledSoftmaxLoss(model=None, scale=0.0)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bi_encoder(tmp_path_factory.mktemp("tiny") / "bi-encoder")


def test_forward_embeds_each_column_with_the_model(base: Path) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(base), device="cpu")
    texts = [["capital of france", "capital of peru"], ["paris city", "lima city"], ["rome city", "oslo city"]]
    features = [model.tokenize(column) for column in texts]
    loss = DecoupledSoftmaxLoss(model, scale=20.0)
    with torch.no_grad():
        got = float(loss(features, None))
        embeddings = [model.encode(column, convert_to_tensor=True) for column in texts]
        expected = np.mean(by_hand(embeddings[0].tolist(), [e.tolist() for e in embeddings[1:]], 20.0))
    assert got == pytest.approx(expected, rel=1e-4)


def test_training_with_it_learns_the_toy_task(base: Path, tmp_path: Path) -> None:
    out = train_encoder(str(base), train_examples(), tmp_path / "m", loss="decoupled", epochs=3, batch_size=4,
                        learning_rate=3e-3, progress=False, seed=0)
    card = read_card(out)
    assert card["recipe"]["loss"] == "decoupled"
    losses = card["loss_curve"]
    third = len(losses) // 3
    assert np.mean(losses[-third:]) < np.mean(losses[:third]) - 0.2, losses
    before, after = encoder_held_out_recall(base), encoder_held_out_recall(out)
    assert before <= 0.25 and after >= 0.5, (before, after)  # 12 held-out queries: chance is 1/12
