"""The CLI reports filters that could only match nothing, and types CSV columns (inferred or --schema)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "retrievekit", *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=300)


def test_filter_messages_and_typed_csv(tmp_path: Path) -> None:
    source = tmp_path / "papers.csv"
    source.write_text("id,title,year,zip\np1,bm25 ranking,1994,02134\np2,neural ranking,2019,10001\n",
                      encoding="utf-8")
    col = str(tmp_path / "col")
    assert cli("index", str(source), col, "--schema", "zip=int", "--no-progress", "--workers", "1").returncode == 0
    hits = json.loads(cli("search", col, "ranking", "--json", "--filter", '{"year": {"gte": 2000}}').stdout)
    assert [h["id"] for h in hits["results"][0]["hits"]] == ["p2"]
    hits = json.loads(cli("search", col, "ranking", "--json", "--filter", '{"zip": 2134}').stdout)
    assert [h["id"] for h in hits["results"][0]["hits"]] == ["p1"]

    bad = cli("search", col, "ranking", "--filter", '{"yaer": {"gte": 2000}}')
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "'yaer'" in bad.stderr and "year (number)" in bad.stderr and "zip (number)" in bad.stderr
    bad = cli("search", col, "ranking", "--filter", '{"year": {"gte": "2000"}}')
    assert bad.returncode == 2 and "'year'" in bad.stderr and "string" in bad.stderr
    bad = cli("search", col, "ranking", "--filter", '{"year": {"exists": "yes"}}')
    assert bad.returncode == 2 and "true or false" in bad.stderr

    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"id": "x", "text": "t"}\n', encoding="utf-8")
    bad = cli("index", str(jsonl), str(tmp_path / "other"), "--schema", "n=int")
    assert bad.returncode == 2 and "--schema" in bad.stderr and "CSV/TSV" in bad.stderr
    assert not (tmp_path / "other").exists()
    bad = cli("index", str(source), str(tmp_path / "other"), "--schema", "year=integr")
    assert bad.returncode == 2 and "unknown type 'integr'" in bad.stderr
