"""Helpers shared by the BENCHMARKS.md section renderers (report_*.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load_result(path: Path) -> Any:
    """A result file's JSON, or None when the benchmark has not been run."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def markdown_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out
