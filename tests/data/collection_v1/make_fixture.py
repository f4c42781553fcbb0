"""Made the format-1 fixture collections in this folder with retrievekit at commit da06eb4 (before the layered
package): run it with that release on the path, from this folder. Kept so the fixture can be re-made the same way.

    git worktree add /tmp/rk-v1 da06eb4 && (cd /tmp/rk-v1 && python setup.py build_ext --inplace)
    PYTHONPATH=/tmp/rk-v1/src python make_fixture.py /path/to/scifact/corpus.jsonl

The documents are the first 60 scifact abstracts cut to 500 characters. ``expected.json`` holds the old code's
results for a few queries in every mode; tests/collection/test_format_v1.py checks today's code gives the same.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from retrievekit import Collection

HERE = Path(__file__).resolve().parent
QUERIES = ["cancer cells and tumour growth", "vitamin D deficiency", "gene expression in stem cells",
           "antibiotic resistance of bacteria", "blood pressure and the heart"]


def main(corpus: str) -> None:
    docs = []
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            docs.append({"id": row["_id"], "title": row["title"], "text": row["text"][:500],
                         "metadata": {"n": len(docs), "source": "scifact"}})
            if len(docs) == 60:
                break
    expected: dict[str, object] = {}
    full = HERE / "full"
    shutil.rmtree(full, ignore_errors=True)
    col = Collection.create(full, dense="minilm", vectors="binary+rescore")
    col.add(docs[:40])
    col.add(docs[40:])
    col.add_sparse_index("splade-tiny", progress=False)
    col.delete([docs[3]["id"], docs[45]["id"]])
    col.add([{**docs[7], "text": docs[7]["text"] + " Updated with zebrafish embryos."}])
    for mode in col.modes():
        res = col.search(QUERIES, k=10, mode=mode)
        expected[mode] = [res.hits(i) for i in range(len(QUERIES))]
    filtered = col.search(QUERIES[:1], k=10, filter={"n": {"gte": 30}})
    expected["bm25_filtered"] = [filtered.hits(0)]
    passages = HERE / "passages"
    shutil.rmtree(passages, ignore_errors=True)
    pcol = Collection.create(passages, passages="sentences:48")
    pcol.add(docs[:20])
    expected["passages_bm25"] = [pcol.search(QUERIES, k=10).hits(i) for i in range(len(QUERIES))]
    expected["passages_count"] = len(pcol)
    expected["documents"] = len(col)
    expected["queries"] = QUERIES
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1))
    for folder in (full, passages):  # the lock file and caches are not part of the format
        for junk in folder.glob("write.lock"):
            junk.unlink()


if __name__ == "__main__":
    main(sys.argv[1])
