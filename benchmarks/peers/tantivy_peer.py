"""tantivy peer (the Rust search engine, through its Python bindings ``tantivy``), run in the peers' virtualenv
(``benchmarks/setup_pisa.sh`` installs it beside PISA).

Indexes a BEIR folder's ``corpus.jsonl`` (``title + " " + text`` into one ``en_stem`` field: lowercasing, English
stemming) with one writer thread, commits, waits for merges: docs/s, index bytes, and the peak RSS of this process
(which does nothing else first). Then BM25 (tantivy's, k1=1.2, b=0.75, fixed) over the given queries, one query per
call (the bindings have no batch search), for each k: queries/s, best of ``--repeats``.

    python benchmarks/peers/tantivy_peer.py --data DIR --queries FILE --work DIR --out FILE
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--queries", type=Path, help="JSON list of [qid, text]; none: index only")
    parser.add_argument("--work", type=Path, required=True, help="index folder (rebuilt)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ks", default="10,100,1000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--heap-mb", type=int, default=512, help="the writer's memory budget")
    args = parser.parse_args(argv)
    import tantivy

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw")
    builder.add_text_field("body", stored=False, tokenizer_name="en_stem")
    index = tantivy.Index(builder.build(), path=str(args.work))
    started = time.perf_counter()
    writer = index.writer(heap_size=args.heap_mb * 2**20, num_threads=1)
    n_docs = 0
    with open(args.data / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            writer.add_document(tantivy.Document(id=str(row["_id"]),
                                                 body=(row.get("title") or "") + " " + (row.get("text") or "")))
            n_docs += 1
    writer.commit()
    writer.wait_merging_threads()
    seconds = time.perf_counter() - started
    result: dict = {"system": "tantivy", "docs": n_docs, "index_seconds": round(seconds, 2),
                    "index_docs_per_second": round(n_docs / seconds, 1),
                    "index_bytes": sum(p.stat().st_size for p in args.work.rglob("*") if p.is_file()),
                    "index_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                    "writer_threads": 1, "heap_mb": args.heap_mb, "k": {}}
    if args.queries:
        index.reload()
        searcher = index.searcher()
        pairs = json.loads(args.queries.read_text())
        parsed = [index.parse_query_lenient(text, ["body"])[0] for _, text in pairs]
        for k in [int(x) for x in args.ks.split(",")]:
            best = float("inf")
            for _ in range(args.repeats):
                started = time.perf_counter()
                for query in parsed:
                    searcher.search(query, k)
                best = min(best, time.perf_counter() - started)
            result["k"][str(k)] = {"qps": round(len(pairs) / best, 1)}
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
