"""``/api/eval``: the latest evaluation report (``retrievekit eval --report DIR``) and its plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from retrievekit.serve.errors import ApiError, responses
from retrievekit.serve.schemas import EvalReport
from retrievekit.serve.state import ServerState


def _plain_name(name: object) -> bool:
    return (isinstance(name, str) and bool(name) and "/" not in name and "\\" not in name and "\x00" not in name
            and not name.startswith(".") and name.lower().endswith(".png"))


def latest_report(reports: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest ``report.json`` (``reports/report.json`` or ``reports/*/report.json``) and its content; plots
    not listed in it, not plain file names or missing on disk are left out of its ``plots``."""
    if not reports.is_dir():
        return None
    candidates = [p for p in (reports / "report.json", *reports.glob("*/report.json")) if p.is_file()]
    if not candidates:
        return None
    path = max(candidates, key=lambda p: p.stat().st_mtime_ns)
    try:
        report = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ApiError(503, "bad_report", f"the latest report {path.name} cannot be read: {exc}") from None
    if not isinstance(report, dict):
        raise ApiError(503, "bad_report", f"the latest report {path.name} is not a JSON object")
    plots = report.get("plots")
    report["plots"] = [p for p in plots if _plain_name(p) and (path.parent / p).is_file()] if isinstance(
        plots, list) else []
    return path, report


def router(state: ServerState) -> APIRouter:
    api = APIRouter(tags=["evaluation"])

    @api.get("/api/eval/latest", response_model=EvalReport, responses=responses(404))
    def eval_latest() -> dict[str, Any]:
        """The newest report.json of the reports folder, with the names of its plots."""
        found = latest_report(state.reports)
        if found is None:
            raise ApiError(404, "no_report", "no evaluation report yet (no report.json in the server's reports "
                           "folder; write one with `retrievekit eval ... --report DIR` and serve with --reports DIR)")
        return found[1]

    @api.get("/api/eval/plots/{name}", response_class=FileResponse,
             responses={200: {"content": {"image/png": {}}, "description": "the plot"}, **responses(404)})
    def eval_plot(name: str) -> FileResponse:
        """A plot listed by /api/eval/latest (only those names are served)."""
        found = latest_report(state.reports)
        if found is None or name not in found[1]["plots"]:
            raise ApiError(404, "not_found", f"no plot {name!r} in the latest report")
        folder = found[0].parent.resolve()
        path = (folder / name).resolve()
        if path.parent != folder or not path.is_file():  # e.g. a symlink pointing elsewhere
            raise ApiError(404, "not_found", f"no plot {name!r} in the latest report")
        return FileResponse(path, media_type="image/png")

    return api
