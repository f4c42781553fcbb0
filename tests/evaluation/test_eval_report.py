"""Evaluation reports: report.json round-trip, plots listed and present, no matplotlib, atomic writes."""

from __future__ import annotations

import json
import sys

import pytest

from retrievekit.evaluation import evaluate
from retrievekit.evaluation.report import ReportError, metric_names, per_query_by_system, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

QRELS = {"q1": {"a": 1}, "q2": {"b": 2, "c": 1}, "q3": {"d": 1}}
RUNS = {
    "lucene": {"q1": {"a": 2.0, "x": 1.0}, "q2": {"x": 3.0, "b": 2.0}, "q3": {"y": 1.0}},
    "dense": {"q1": {"x": 2.0, "a": 1.0}, "q2": {"b": 3.0, "c": 2.0}, "q3": {"d": 1.0}},
}


def _eval(system: str):
    return evaluate(RUNS[system], QRELS, ["ndcg@10", "recall@100", "map"], per_query=True)


@pytest.fixture
def two_systems():
    results = {s: _eval(s) for s in RUNS}
    entries = [{"system": s, **r.mean, "queries": 3, "queries_per_second": 1234.5} for s, r in results.items()]
    summary = {**entries[0], "dataset": "/data/toy", "documents": 6, "systems": entries,
               "significance": {"ndcg@10": {"dense": {"delta": 0.2, "p_value": 0.01, "p_holm": 0.02,
                                                     "significant": True}}}}
    per_query = per_query_by_system({s: r.per_query for s, r in results.items()})
    return summary, per_query


def test_report_round_trips_summary_and_per_query(tmp_path, two_systems):
    summary, per_query = two_systems
    path = write_report(tmp_path / "reports", summary, per_query)
    assert path == tmp_path / "reports" / "report.json"
    report = json.loads(path.read_text())
    for key, value in summary.items():
        assert report[key] == value
    assert report["per_query"] == per_query
    assert report["per_query"]["dense"]["q3"]["ndcg@10"] == pytest.approx(1.0)
    assert report["metrics"] == ["ndcg@10", "recall@100", "map"]
    assert report["created"].endswith("+00:00")
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_plots_listed_exist_as_png(tmp_path, two_systems):
    pytest.importorskip("matplotlib")
    summary, per_query = two_systems
    report = json.loads(write_report(tmp_path, summary, per_query).read_text())
    assert report["plots"] == ["metrics.png", "ndcg_per_query.png"]
    for name in report["plots"]:
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000


def test_single_system_report(tmp_path):
    pytest.importorskip("matplotlib")
    result = _eval("lucene")
    summary = {"system": "lucene", **result.mean, "dataset": "toy"}
    report = json.loads(write_report(tmp_path, summary, per_query_by_system({"lucene": result.per_query})).read_text())
    assert "systems" not in report
    assert report["plots"] == ["metrics.png", "ndcg_per_query.png"]
    assert all((tmp_path / name).is_file() for name in report["plots"])


def test_without_matplotlib_no_plots_and_a_log_line(tmp_path, two_systems, monkeypatch, caplog):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib...` raise ImportError
    summary, per_query = two_systems
    with caplog.at_level("INFO", logger="retrievekit.evaluation.report"):
        path = write_report(tmp_path, summary, per_query)
    report = json.loads(path.read_text())
    assert report["plots"] == []
    assert not list(tmp_path.glob("*.png"))
    assert "matplotlib is not installed" in caplog.text


def test_non_finite_and_numpy_values_become_valid_json(tmp_path):
    np = pytest.importorskip("numpy")
    summary = {"system": "s", "ndcg@10": np.float32(0.5), "queries_per_second": float("inf"),
               "significance": {"ndcg@10": {"t": {"p_value": float("nan")}}}, "sizes": np.arange(3)}
    text = write_report(tmp_path, summary, {"s": {"q": {"ndcg@10": 0.5}}}).read_text()
    assert "NaN" not in text and "Infinity" not in text
    report = json.loads(text)
    assert report["ndcg@10"] == 0.5 and report["queries_per_second"] is None
    assert report["significance"]["ndcg@10"]["t"]["p_value"] is None
    assert report["sizes"] == [0, 1, 2]


def test_rewrite_replaces_the_report(tmp_path):
    write_report(tmp_path, {"system": "a", "ndcg@10": 0.1}, {})
    write_report(tmp_path, {"system": "b", "ndcg@10": 0.2}, {})
    assert json.loads((tmp_path / "report.json").read_text())["system"] == "b"


def test_bad_input_raises_report_error(tmp_path):
    with pytest.raises(ReportError, match="summary"):
        write_report(tmp_path, ["not", "a", "dict"], {})  # type: ignore[arg-type]
    with pytest.raises(ReportError, match="per_query"):
        write_report(tmp_path, {"system": "a"}, {"a": [1, 2]})  # type: ignore[dict-item]
    with pytest.raises(ReportError, match="systems"):
        write_report(tmp_path, {"system": "a", "systems": "oops"}, {})
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ReportError, match="cannot create"):
        write_report(blocker / "sub", {"system": "a"}, {})


def test_metric_names_skip_non_metrics():
    summary = {"system": "a", "ndcg@10": 0.3, "MAP": 0.2, "queries": 5, "p@10": 0.1, "index_seconds": 2.0,
               "recall@100": None}
    assert metric_names(summary) == ["ndcg@10", "MAP", "p@10"]
