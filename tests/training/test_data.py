"""TrainingExample / TrainingSet: JSONL round trip, line-numbered errors, atomic save, mix and split under a seed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrievekit.core.errors import InputFormatError
from retrievekit.training import TrainingDataError, TrainingExample, TrainingSet


def example(i: int, source: str = "a", **kw: object) -> TrainingExample:
    return TrainingExample(query=f"query {i}", positive=f"positive {i}", positive_id=f"d{i}", source=source,
                           **kw)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    full = TrainingExample(query="q", positive="p", positive_id="d1", negatives=["n1", "n2"],
                           negative_ids=["d2", None], positive_score=3.5, negative_scores=[2.0, 1.0],
                           teacher_scores=[9.0, 1.0, -2.0], source="qrels", query_id="q1")
    data = TrainingSet([full, example(2)])
    path = data.save(tmp_path / "train.jsonl")
    assert TrainingSet.load(path) == data
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["version"] == 1 and lines[0]["negatives"] == ["n1", "n2"]
    assert "negatives" not in lines[1]  # plain: optional fields only when set
    assert not list(tmp_path.glob("*.tmp"))


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = TrainingSet([example(1)]).save(tmp_path / "t.jsonl")
    before = path.read_text()

    def fail(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", fail)
    with pytest.raises(OSError):
        TrainingSet([example(2), example(3)]).save(path)
    assert path.read_text() == before


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "invalid JSON"),
    ('{"query": "q"}', "missing field 'positive'"),
    ('{"query": "q", "positive": "p", "version": 7}', "unsupported training data version 7"),
    ('{"query": "q", "positive": "p", "colour": 1}', "unknown field(s) colour"),
    ('{"query": "q", "positive": "p", "negatives": ["n"], "negative_scores": [1, 2]}', "2 negative_scores for 1"),
    ('{"query": "q", "positive": "p", "teacher_scores": [1, 2]}', "2 teacher_scores"),
    ('{"query": " ", "positive": "p"}', "query must be a non-empty string"),
    ('["q", "p"]', "expected a JSON object"),
])
def test_bad_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(example(1).to_json()) + "\n\n" + line + "\n")
    with pytest.raises(InputFormatError) as info:
        TrainingSet.load(path)
    assert info.value.line == 3 and str(path) in str(info.value) and message in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="no such training data file"):
        TrainingSet.load(tmp_path / "nope.jsonl")


def test_split_keeps_queries_on_one_side_and_is_seeded() -> None:
    data = TrainingSet([example(i % 10) for i in range(40)])  # 10 queries, 4 examples each
    train, dev = data.split(0.3, seed=1)
    assert len(train) + len(dev) == 40 and len(dev) == 12
    assert not {e.query for e in train} & {e.query for e in dev}
    assert data.split(0.3, seed=1) == (train, dev)
    assert data.split(0.3, seed=2)[1] != dev
    with pytest.raises(TrainingDataError, match="dev_fraction"):
        data.split(1.0)


def test_mix_weights_and_seed() -> None:
    a = TrainingSet([example(i, "a") for i in range(10)])
    b = TrainingSet([example(i, "b") for i in range(4)])
    plain = TrainingSet.mix([a, b], seed=0)
    assert sorted(map(repr, plain)) == sorted(map(repr, [*a, *b]))
    weighted = TrainingSet.mix([a, b], weights=[1, 1], seed=3, size=20)
    sources = [e.source for e in weighted]
    assert sources.count("a") == 10 and sources.count("b") == 10  # b upsampled: every example at least twice
    assert {e.query for e in weighted if e.source == "b"} == {e.query for e in b}
    assert TrainingSet.mix([a, b], weights=[1, 1], seed=3, size=20) == weighted
    assert TrainingSet.mix([a, b], weights=[1, 1], seed=4, size=20) != weighted
    assert [e.source for e in TrainingSet.mix([a, b], weights=[3, 0], seed=0, size=7)] == ["a"] * 7
    with pytest.raises(TrainingDataError, match="2 weights for 1 sets"):
        TrainingSet.mix([a], weights=[1, 2])
    with pytest.raises(TrainingDataError, match="positive sum"):
        TrainingSet.mix([a, b], weights=[0, 0])
