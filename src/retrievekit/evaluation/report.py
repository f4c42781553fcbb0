"""Evaluation reports on disk: ``report.json`` plus PNG plots, read by the server's evaluate page.

``write_report(out_dir, summary, per_query)`` writes ``out_dir/report.json`` = the summary that
``retrievekit eval --json`` prints, a ``created`` ISO timestamp, the ``metrics`` found, ``per_query`` scores and
the ``plots`` written next to it. Plots need matplotlib (drawn with the Agg canvas, no display, no pyplot global
state); without it the report has ``"plots": []``. Every file is written to a temporary name and renamed, so a
reader (the server) never sees a half-written report or image, and plots exist before the report that lists them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from retrievekit.core.errors import RetrievekitError

logger = logging.getLogger(__name__)

REPORT_FILE = "report.json"
PerQuery = Mapping[str, Mapping[str, Mapping[str, float]]]  # system -> qid -> metric -> value

# Names evaluate() reports (lower-case; "@k" optional): what a summary key must look like to be shown as a metric.
_METRIC = re.compile(r"^(ndcg|recall|map|mrr|p|precision|success|r-precision|rprec|bpref)(@\d+)?$", re.IGNORECASE)


class ReportError(RetrievekitError):
    """The report cannot be written: bad summary or per-query scores, or an unwritable folder."""


def systems_of(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every evaluated system's entry: ``summary["systems"]`` when several were compared, else the summary itself."""
    systems = summary.get("systems")
    if systems is None:
        return [dict(summary)]
    if not isinstance(systems, list) or not all(isinstance(s, Mapping) for s in systems):
        raise ReportError(f"summary['systems'] must be a list of objects, got {type(systems).__name__}")
    return [dict(s) for s in systems]


def metric_names(summary: Mapping[str, Any], per_query: PerQuery | None = None) -> list[str]:
    """Metric keys in report order: those of the first system's entry that name a metric and hold a number."""
    first = systems_of(summary)[0]
    names = [k for k, v in first.items()
             if _METRIC.match(k) and isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not names and per_query:
        for scores in per_query.values():
            for values in scores.values():
                return list(values)
    return names


def per_query_by_system(by_metric: PerQuery) -> dict[str, dict[str, dict[str, float]]]:
    """``{system: {metric: {qid: v}}}`` (what ``evaluate(per_query=True)`` gives per system) -> the report's
    ``{system: {qid: {metric: v}}}``."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for system, metrics in by_metric.items():
        queries: dict[str, dict[str, float]] = {}
        for metric, values in metrics.items():
            for qid, value in values.items():
                queries.setdefault(qid, {})[metric] = value
        out[system] = queries
    return out


def write_report(out_dir: str | Path, summary: Mapping[str, Any], per_query: PerQuery) -> Path:
    """Write ``out_dir/report.json`` (and plots when matplotlib is installed); return the report's path.

    ``summary``: the ``retrievekit eval --json`` object (``system``, metric means such as ``ndcg@10``, ``dataset``,
    ..., with several systems ``systems`` and ``significance``). ``per_query``: ``{system: {qid: {metric: value}}}``
    (see ``per_query_by_system`` to convert ``evaluate``'s metric-major form).
    """
    if not isinstance(summary, Mapping):
        raise ReportError(f"summary must be a dict, got {type(summary).__name__}")
    if not isinstance(per_query, Mapping) or not all(isinstance(q, Mapping) for q in per_query.values()):
        raise ReportError("per_query must be {system: {qid: {metric: value}}}")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create the report folder {out}: {exc}") from exc
    metrics = metric_names(summary, per_query)
    plots = _write_plots(out, summary, per_query, metrics)
    report = {
        **summary,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "metrics": metrics,
        "per_query": {system: {qid: dict(values) for qid, values in queries.items()}
                      for system, queries in per_query.items()},
        "plots": plots,
    }
    text = json.dumps(_finite(report), indent=2, allow_nan=False, default=_jsonable)
    path = out / REPORT_FILE
    _atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    logger.info("wrote evaluation report %s (%d plots)", path, len(plots))
    return path


# -- JSON ------------------------------------------------------------------------------------------------------
def _finite(value: Any) -> Any:
    """NaN and infinities become null: browsers' JSON.parse rejects Python's NaN/Infinity literals."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if callable(getattr(value, "tolist", None)):  # numpy scalars and arrays
        return _finite(value.tolist())
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"report value of type {type(value).__name__} is not JSON-serialisable")


def _atomic_write(path: Path, write: Callable[[Any], Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


# -- plots -----------------------------------------------------------------------------------------------------
def _figure_class() -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        logger.info("matplotlib is not installed: the evaluation report has no plots (pip install matplotlib)")
        return None

    def make(**kwargs: Any) -> Any:
        fig = Figure(**kwargs)
        FigureCanvasAgg(fig)  # render off-screen whatever matplotlib's default backend is
        return fig

    return make


def _write_plots(out: Path, summary: Mapping[str, Any], per_query: PerQuery, metrics: list[str]) -> list[str]:
    figure = _figure_class()
    if figure is None:
        return []
    systems = systems_of(summary)
    names = [str(s.get("system", f"system {i + 1}")) for i, s in enumerate(systems)]
    written: list[str] = []
    if metrics:
        fig = figure(figsize=(max(6.0, 1.1 * len(metrics) + 2.0), 4.0), dpi=100)
        ax = fig.add_subplot()
        width = 0.8 / len(systems)
        for i, (name, system) in enumerate(zip(names, systems)):
            values = [float(system.get(m) or 0.0) for m in metrics]
            xs = [j + (i - (len(systems) - 1) / 2) * width for j in range(len(metrics))]
            ax.bar(xs, values, width=width, label=name)
        ax.set_xticks(range(len(metrics)), metrics)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("mean over queries")
        ax.set_title("Metrics per system")
        ax.legend(fontsize="small")
        fig.tight_layout()
        written.append(_save(fig, out, "metrics.png"))
    ndcg = next((m for m in metrics if m.lower() == "ndcg@10"), metrics[0] if metrics else None)
    curves = {name: per_query[name] for name in names if per_query.get(name)}
    if ndcg is not None and curves:
        fig = figure(figsize=(7.0, 4.0), dpi=100)
        ax = fig.add_subplot()
        base_name, base = next(iter(curves.items()))
        if len(curves) == 1:
            values = sorted((float(v.get(ndcg, 0.0)) for v in base.values()), reverse=True)
            ax.bar(range(len(values)), values, width=1.0)
            ax.set_ylabel(ndcg)
            ax.set_title(f"{ndcg} per query, sorted ({base_name})")
        else:
            # Per-query difference with the first system: where a system wins and loses, not just its mean.
            for name, scores in list(curves.items())[1:]:
                deltas = sorted((float(scores[q].get(ndcg, 0.0)) - float(base[q].get(ndcg, 0.0))
                                 for q in scores if q in base), reverse=True)
                ax.plot(range(len(deltas)), deltas, label=name)
            ax.axhline(0.0, color="grey", linewidth=0.8)
            ax.set_ylabel(f"{ndcg} difference with {base_name}")
            ax.set_title(f"{ndcg} per query against {base_name}, sorted")
            ax.legend(fontsize="small")
        ax.set_xlabel("queries, sorted")
        ax.xaxis.get_major_locator().set_params(integer=True)
        fig.tight_layout()
        written.append(_save(fig, out, f"{_safe(ndcg)}_per_query.png"))
    return written


def _save(fig: Any, out: Path, name: str) -> str:
    _atomic_write(out / name, lambda f: fig.savefig(f, format="png"))
    return name


def _safe(name: str) -> str:
    """'ndcg@10' -> 'ndcg' : plot file names the server can list and serve without escaping."""
    return re.sub(r"@\d+$", "", name).replace("-", "_").lower() or "metric"
