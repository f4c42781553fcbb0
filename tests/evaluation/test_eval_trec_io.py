"""TREC run / qrels and BEIR qrels reading and writing."""

from __future__ import annotations

import gzip

import pytest
from paths import shared_data

from retrievekit.core.errors import InputFormatError
from retrievekit.evaluation import evaluate, read_qrels, read_run, write_qrels, write_run


def test_write_run_sorts_by_score_then_docid_and_round_trips(tmp_path):
    run = {"q2": {"a": 0.5, "b": 2.0, "c": 0.5, "d": 0.1 + 0.2}, "q1": {"x": -1.0}}
    path = tmp_path / "run.txt"
    write_run(run, path, tag="bm25")
    lines = path.read_text().splitlines()
    assert lines == [
        "q2 Q0 b 1 2.0 bm25",
        "q2 Q0 c 2 0.5 bm25",  # tie with "a": larger docid first, as trec_eval ranks it
        "q2 Q0 a 3 0.5 bm25",
        "q2 Q0 d 4 0.30000000000000004 bm25",
        "q1 Q0 x 1 -1.0 bm25",
    ]
    assert read_run(path) == run  # scores come back bit-identical


def test_write_run_depth_and_gzip(tmp_path):
    run = {"q": {f"d{i}": float(i) for i in range(10)}}
    path = tmp_path / "run.txt.gz"
    write_run(run, path, depth=3)
    with gzip.open(path, "rt") as f:
        assert [line.split()[2] for line in f] == ["d9", "d8", "d7"]
    assert read_run(path) == {"q": {"d9": 9.0, "d8": 8.0, "d7": 7.0}}


@pytest.mark.parametrize("bad", [{"q 1": {"a": 1.0}}, {"q": {"a\tb": 1.0}}, {"q": {"": 1.0}}])
def test_write_run_refuses_ids_that_break_the_format(tmp_path, bad):
    with pytest.raises(InputFormatError, match="separator"):
        write_run(bad, tmp_path / "r.txt")


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("q Q0 a 1 1.0 t\nq Q0 b 2 0.5\n", 2, "expected 6 fields"),
        ("q Q0 a 1 1.0 t\n\nq Q0 b 2 high t\n", 3, "'high' is not a number"),
        ("q Q0 a 1 1.0 t\nq Q0 a 2 0.5 t\n", 2, "'a' appears twice for query 'q'"),
    ],
)
def test_read_run_errors_name_path_and_line(tmp_path, content, line, message):
    path = tmp_path / "bad.run"
    path.write_text(content)
    with pytest.raises(InputFormatError, match=message) as info:
        read_run(path)
    assert info.value.path == str(path) and info.value.line == line
    assert f"{path}:{line}:" in str(info.value)


def test_read_run_reports_bad_utf8_at_its_line(tmp_path):
    path = tmp_path / "bad.run"
    path.write_bytes(b"q Q0 a 1 1.0 t\nq Q0 \xff 2 0.5 t\n")
    with pytest.raises(InputFormatError, match="UTF-8") as info:
        read_run(path)
    assert info.value.line == 2


def test_trec_and_beir_qrels_round_trip_and_autodetect(tmp_path):
    qrels = {"1": {"d1": 2, "d2": 0}, "q 2": {"d3": 1}}  # BEIR TSV allows spaces in ids
    write_qrels(qrels, tmp_path / "q.tsv", format="beir")
    assert (tmp_path / "q.tsv").read_text().splitlines()[0] == "query-id\tcorpus-id\tscore"
    assert read_qrels(tmp_path / "q.tsv") == qrels
    trec = {"1": {"d1": 2, "d2": 0}, "2": {"d3": -1}}
    write_qrels(trec, tmp_path / "q.trec")
    assert (tmp_path / "q.trec").read_text().splitlines()[0] == "1 0 d1 2"
    assert read_qrels(tmp_path / "q.trec") == trec
    with pytest.raises(InputFormatError, match="separator"):
        write_qrels(qrels, tmp_path / "bad.trec")  # "q 2" cannot be written in TREC format


def test_qrels_detection_without_header_and_with_tabbed_trec(tmp_path):
    (tmp_path / "a.tsv").write_text("q1\td1\t1\nq1\td2\t0\n")
    assert read_qrels(tmp_path / "a.tsv") == {"q1": {"d1": 1, "d2": 0}}
    (tmp_path / "b.txt").write_text("\ufeffq1\t0\td1\t3\n")
    assert read_qrels(tmp_path / "b.txt") == {"q1": {"d1": 3}}
    (tmp_path / "empty").write_text("")
    assert read_qrels(tmp_path / "empty") == {}


@pytest.mark.parametrize(
    ("content", "fmt", "line", "message"),
    [
        ("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\n", None, 3, "expected 3 tab-separated"),
        ("q1\td1\tyes\n", None, 1, "relevance 'yes' is not an integer"),
        ("q1 0 d1 1\nq1 0 d2\n", None, 2, "expected 4 fields"),
        ("q1 d1 1\n", None, 1, "cannot tell the qrels format"),
        ("q1 0 d1 1\nq1 0 d1 2\n", "trec", 2, "judged twice with different values"),
    ],
)
def test_read_qrels_errors_name_path_and_line(tmp_path, content, fmt, line, message):
    path = tmp_path / "bad.qrels"
    path.write_text(content)
    with pytest.raises(InputFormatError, match=message) as info:
        read_qrels(path, format=fmt)
    assert info.value.path == str(path) and info.value.line == line


def test_repeated_identical_judgment_is_accepted(tmp_path):
    (tmp_path / "q").write_text("q1 0 d1 1\nq1 0 d1 1\n")
    assert read_qrels(tmp_path / "q") == {"q1": {"d1": 1}}


def test_real_beir_qrels_and_run_file_evaluate_like_in_memory(tmp_path):
    qrels_path = shared_data("scifact", "qrels", "test.tsv")
    qrels = read_qrels(qrels_path)
    assert len(qrels) == 300 and sum(len(d) for d in qrels.values()) == 339
    write_qrels(qrels, tmp_path / "scifact.qrels")
    assert read_qrels(tmp_path / "scifact.qrels", format="trec") == qrels
    # A run that ranks each query's relevant documents below one distractor.
    run = {q: {**{d: 1.0 for d in docs}, "distractor": 2.0} for q, docs in qrels.items()}
    write_run(run, tmp_path / "run.txt")
    assert read_run(tmp_path / "run.txt") == run
    assert evaluate(read_run(tmp_path / "run.txt"), qrels, ["mrr"])["mrr"] == pytest.approx(0.5)
