"""Posting compression for BM25 (issue 17): would compressing the postings pay for itself here? Measured, not assumed.

Today a segment's postings are plain arrays (``docs.npy`` uint32 document numbers, ``tfs.npy`` uint16 term
frequencies: 6 bytes a posting) that the C kernel reads in place. This study reads the real postings of each
collection through the package's own readers, encodes every term's list with real codecs from FastPFor
(``pyfastpfor``, the bench extra; one call per list, as a compressed index would store them) — document-number gaps
(d-gaps, first document as is) and tf - 1 — checks that each decodes back exactly, and reports:

* size: bytes per posting and total postings bytes, uncompressed vs each codec, plus the skip entries a compressed
  list needs for the MaxScore path's seeks (last document and offset per block of 128: 8 bytes, counted, not
  measured), and what that does to the whole collection folder;
* decode speed, one thread: postings/s decoding the whole index (documents: decode + prefix sum; tfs: decode),
  best of ``--repeats``, as one stream per array, so that the ~1 us a Python call into the binding costs (as much as
  decoding a typical list, and not paid by a kernel decoding in C) does not count;
* per query (the dataset's query set, k=10 and 100): the postings today's kernel reads — every posting of the query
  terms on the exhaustive path; where the kernel's cost rule would pick MaxScore, that total is only an upper bound
  and the query is counted — the bytes those are, uncompressed and compressed, and the time decoding them adds (the
  query set's lists one after another, decoded as one stream), as a fraction of today's measured query time
  (``BM25Retriever`` batch search, one thread, best of ``--repeats``; also of ``search_batch`` alone, without
  query analysis). The most that reading fewer bytes could save in memory is the time to stream the saved bytes at
  the measured read bandwidth: compression pays for in-memory speed only if that beats the decode time;
* memory and IO: the search process's own memory (measured in a child process on each collection, fitted
  linearly in documents) and the bytes per document of postings and of the whole collection, extrapolated to find
  where they stop fitting this machine's RAM beside it (the page cache can then no longer hold them).

The machine is shared: all of a dataset's timings run in one round robin, each the best of ``--repeats`` rounds,
so a busy moment slows them alike; the load average is recorded at start and end.

    python benchmarks/run_posting_compression.py --datasets synthetic-1000000,scifact,scifact-long
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "posting-compression.json"

#: name -> (FastPFor codec, what it is)
CODECS = {
    "bp128": ("simdbinarypacking", "block-wise (128) frame-of-reference bit packing, SIMD (SIMD-BP128)"),
    "fastpfor128": ("simdfastpfor128", "PForDelta family: bit packing per 128 with exceptions patched (SIMD-FastPFor)"),
    "streamvbyte": ("streamvbyte", "StreamVByte: byte-aligned, 2-bit lengths kept apart, SIMD shuffle decode"),
    "varintg8iu": ("varintg8iu", "varint-G8IU: byte-aligned groups of 8 bytes with a descriptor, SIMD decode"),
}
#: postings per block of a compressed list, and the skip entry each block needs for seeks (last document, offset)
BLOCK = 128
SKIP_BYTES = 8
KS = (10, 100)


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def sample(fn: Any, at_least: float = 0.01) -> float:
    """Seconds per call of ``fn``, called until ``at_least`` seconds have passed: a sub-millisecond call (a small
    collection's stream) timed once is mostly timer and cache noise."""
    calls, started = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= at_least:
            return elapsed / calls


class Encoded:
    """Every term's list of one array (d-gaps or tf - 1) encoded on its own by one codec, as a compressed index would
    store it: one uint32 buffer, list t in words ``[starts[t], starts[t + 1])``."""

    def __init__(self, codec: Any, values: np.ndarray, offsets: np.ndarray) -> None:
        n_terms = len(offsets) - 1
        out = np.zeros(len(values) + 1024, np.uint32)  # codecs need a little room past the input's length
        parts, starts = [], np.zeros(n_terms + 1, np.int64)
        for t in range(n_terms):
            a, b = int(offsets[t]), int(offsets[t + 1])
            words = codec.encodeArray(values[a:b], b - a, out, len(out))
            parts.append(out[:words].copy())
            starts[t + 1] = starts[t] + words
        self.data = np.concatenate(parts) if parts else np.zeros(0, np.uint32)
        self.starts = starts

    @property
    def nbytes(self) -> int:
        return 4 * len(self.data)


def d_gaps(docs: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Each list's documents as gaps from the previous one (its first document as is), uint32."""
    gaps = np.asarray(docs, np.uint32).copy()
    gaps[1:] -= np.asarray(docs[:-1], np.uint32)  # wraps at list starts, rewritten next
    starts = offsets[:-1][np.diff(offsets) > 0]
    gaps[starts] = docs[starts]
    return gaps


def encode_stream(codec: Any, values: np.ndarray) -> np.ndarray:
    """``values`` encoded as one array (uint32 words)."""
    out = np.zeros(len(values) + 1024, np.uint32)
    return out[:codec.encodeArray(values, len(values), out, len(out))].copy()


def query_lists(col: Any, reader: Any, queries: list[str]) -> list[np.ndarray]:
    """Each query's term ids in the segment, as the batch search gives them to the kernel (distinct analysed
    terms found in the index)."""
    analyzer = col.analyzer
    get = reader.term_ids.get
    out = []
    for q in queries:
        tids = [get(t, -1) for t in Counter(analyzer.analyze(q))]
        out.append(np.array([t for t in tids if t >= 0], np.int64))
    return out


def maxscore_queries(col: Any, reader: Any, queries: list[str], k: int) -> int:
    """How many queries the batch kernel's cost rule (``kernel.prune``) would search by MaxScore at ``k``."""
    from retrievekit.retrieval.bm25.kernel import prune
    from retrievekit.retrieval.bm25.retriever import term_statistics
    from retrievekit.retrieval.bm25.scoring import get_scorer

    snap = col.snapshot()
    scorer = get_scorer(None)
    offsets = np.asarray(reader.offsets)
    count = 0
    for q in queries:
        bag = Counter(col.analyzer.analyze(q))
        terms = list(bag)
        if not terms:
            continue
        tids, present, df, cf = term_statistics(snap, terms)
        keep = present[0] & (df > 0)
        if not keep.any():
            continue
        w, c = scorer.term_weights(df[keep], cf[keep], np.array([bag[t] for t in terms], np.float64)[keep],
                                   snap.bm25_stats)
        count += bool(prune(offsets, tids[0][keep], w, c, scorer.mode, k, n_docs=len(reader.lengths)))
    return count


def process_memory(path: Path, queries: list[str]) -> dict[str, int]:
    """The search process's private memory (RssAnon: not the page cache) after opening the collection and running
    the queries at every k, in a fresh child process so this study's own arrays do not count."""
    code = (
        "import json, sys\n"
        "from retrievekit import Collection\n"
        "from retrievekit.retrieval.bm25.retriever import BM25Retriever\n"
        "col = Collection.open(sys.argv[1]); queries = json.loads(sys.stdin.read())\n"
        "before = {l.split(':')[0]: int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('Rss')}\n"
        f"[BM25Retriever(col).search(queries, k) for k in {list(KS)}]\n"
        "after = {l.split(':')[0]: int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('Rss')}\n"
        "print(json.dumps({'docs': len(col), 'rss_anon_bytes': after['RssAnon'] * 1024,\n"
        "                  'rss_anon_opened_bytes': before['RssAnon'] * 1024,\n"
        "                  'rss_file_bytes': after['RssFile'] * 1024}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], input=json.dumps(queries), capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout)


def folder_bytes(path: Path) -> dict[str, int]:
    """Bytes of the collection folder: postings (docs.npy, tfs.npy), the rest of the BM25 index, everything else."""
    sizes = {"postings": 0, "bm25_other": 0, "other": 0}
    for f in path.rglob("*"):
        if not f.is_file():
            continue
        size = f.stat().st_size
        if f.parent.name == "bm25" and f.name in ("docs.npy", "tfs.npy"):
            sizes["postings"] += size
        elif f.parent.name == "bm25":
            sizes["bm25_other"] += size
        else:
            sizes["other"] += size
    return sizes


def study(name: str, data_root: Path, repeats: int) -> dict[str, Any]:
    import pyfastpfor as pfor

    from benchmarks.run_bm25_pruning import collection_for, load_queries, long_queries
    from retrievekit.index.bm25.segment import bm25_postings
    from retrievekit.retrieval.bm25.retriever import BM25Retriever

    base = name[: -len("-long")] if name.endswith("-long") else name
    col, data = collection_for(base, data_root)
    queries = long_queries(data) if name.endswith("-long") else load_queries(data)
    snap = col.snapshot()
    if len(snap.segments) != 1:
        raise SystemExit(f"{name}: expected one optimized segment, found {len(snap.segments)} (run optimize())")
    reader = bm25_postings(snap.segments[0])
    offsets = np.asarray(reader.offsets, np.int64)
    docs, tfs = np.asarray(reader.docs), np.asarray(reader.tfs)
    n_post, df = len(docs), np.diff(offsets)
    print(f"{name}: {len(col):,} documents, {n_post:,} postings, {len(df):,} terms; encoding", file=sys.stderr,
          flush=True)
    gaps = d_gaps(docs, offsets)
    tf_values = tfs.astype(np.uint32) - 1  # tf >= 1: tf - 1 packs in fewer bits; the scorer adds the 1 back
    skip_blocks = int(((df[df > BLOCK] + BLOCK - 1) // BLOCK).sum())
    uncompressed = {"docs_bytes": int(docs.nbytes), "tfs_bytes": int(tfs.nbytes), "skip_bytes": 0,
                    "total_bytes": int(docs.nbytes + tfs.nbytes),
                    "bytes_per_posting": round((docs.nbytes + tfs.nbytes) / n_post, 3)}
    out: dict[str, Any] = {
        "dataset": name, "docs": len(col), "postings": n_post, "terms": len(df), "queries": len(queries),
        "mean_query_words": round(float(np.mean([len(q.split()) for q in queries])), 1),
        "tf_dtype": str(tfs.dtype), "lists_over_one_block": int((df > BLOCK).sum()),
        "postings_in_lists_over_one_block": round(float(df[df > BLOCK].sum() / n_post), 4),
        "collection_bytes": folder_bytes(Path(col.path)), "size": {"uncompressed": uncompressed},
        "decode": {}, "per_query": {}}
    lists = query_lists(col, reader, queries)
    q_postings = np.array([int(df[t].sum()) for t in lists], np.int64)
    q_lists = np.array([len(t) for t in lists], np.int64)
    working_set = np.unique(np.concatenate(lists)) if lists else np.zeros(0, np.int64)
    out["query_postings"] = {
        "mean": round(float(q_postings.mean()), 1), "p50": int(np.percentile(q_postings, 50)),
        "p99": int(np.percentile(q_postings, 99)), "max": int(q_postings.max()),
        "mean_lists": round(float(q_lists.mean()), 2),
        "maxscore_queries": {str(k): maxscore_queries(col, reader, queries, k) for k in KS},
        "working_set_postings": int(df[working_set].sum()),
        "working_set_fraction": round(float(df[working_set].sum() / n_post), 4)}
    # Everything timed goes into one round robin, best of the rounds each: on a shared machine a busy moment then
    # slows all of them alike instead of deciding one ratio.
    timers: dict[str, Any] = {"read": lambda: (np.bitwise_or.reduce(docs), np.bitwise_or.reduce(tfs))}
    # today's query time: the batch search, one thread; and search_batch alone (term lookup, kernel, top k: no
    # query analysis or id mapping), the part decoding would grow
    bags = [{t: float(n) for t, n in Counter(col.analyzer.analyze(q)).items()} for q in queries]
    allowed = snap.allowed(None)
    for k in KS:
        retriever = BM25Retriever(col)
        retriever.search(queries, k)  # warm-up: bounds, norms, page cache
        timers[f"search/{k}"] = lambda r=retriever, k=k: r.search(queries, k)
        timers[f"batch/{k}"] = lambda r=retriever, k=k: r.search_batch(snap, bags, k, allowed)

    # The query set's lists one after another, as the kernel reads them (a list twice when two queries have it).
    # Decoding such a stream in one call times the decoding work itself: per-list calls from Python would cost
    # ~1 us each in the binding, as much as the work on a typical list, and that a kernel would not pay.
    q_index = np.concatenate([np.arange(offsets[t], offsets[t + 1]) for terms in lists for t in terms])
    streams = {"index": (gaps, tf_values), "queries": (gaps[q_index], tf_values[q_index])}
    targets = {stream: np.zeros(len(values) + 1024, np.uint32) for stream, (values, _) in streams.items()}
    decoded = targets["index"]
    encoded: dict[str, tuple[Encoded, Encoded]] = {}
    for label, (codec_name, _) in CODECS.items():
        codec = pfor.getCodec(codec_name)
        enc_docs, enc_tfs = Encoded(codec, gaps, offsets), Encoded(codec, tf_values, offsets)
        encoded[label] = enc_docs, enc_tfs
        for enc, values in ((enc_docs, gaps), (enc_tfs, tf_values)):  # every list decodes back exactly
            for t in range(len(df)):
                n = codec.decodeArray(enc.data[enc.starts[t]:enc.starts[t + 1]], int(enc.starts[t + 1] - enc.starts[t]),
                                      decoded[offsets[t]:], len(decoded) - int(offsets[t]))
                if n != df[t]:
                    raise SystemExit(f"{name}: {label} decoded {n} postings of term {t}, not {df[t]}")
            if not np.array_equal(decoded[:n_post], values):
                raise SystemExit(f"{name}: {label} did not decode back to the index's postings")
        size: dict[str, Any] = {"docs_bytes": enc_docs.nbytes, "tfs_bytes": enc_tfs.nbytes,
                                "skip_bytes": skip_blocks * SKIP_BYTES}
        size["total_bytes"] = sum(size.values())
        size["bytes_per_posting"] = round(size["total_bytes"] / n_post, 3)
        size["ratio"] = round(size["total_bytes"] / uncompressed["total_bytes"], 4)
        out["size"][label] = size
        for stream, (doc_values, tf_stream) in streams.items():
            enc_d, enc_t, target = encode_stream(codec, doc_values), encode_stream(codec, tf_stream), targets[stream]
            if (codec.decodeArray(enc_d, len(enc_d), target, len(target)) != len(doc_values)
                    or not np.array_equal(target[:len(doc_values)], doc_values)):
                raise SystemExit(f"{name}: {label} did not decode the {stream} stream back")

            def docs_pass(enc_d: np.ndarray = enc_d, target: np.ndarray = target, codec: Any = codec) -> None:
                n = codec.decodeArray(enc_d, len(enc_d), target, len(target))
                pfor.prefixSum1(target, n)  # gaps -> document numbers

            def tfs_pass(enc_t: np.ndarray = enc_t, target: np.ndarray = target, codec: Any = codec) -> None:
                codec.decodeArray(enc_t, len(enc_t), target, len(target))

            timers[f"{label}/{stream}/docs"], timers[f"{label}/{stream}/tfs"] = docs_pass, tfs_pass

    best = {key: float("inf") for key in timers}
    # the study's own objects out of the collector's way: otherwise its full collections, set off by the searches'
    # allocations, walk them inside the timed searches (measured: ~1.5x slower searches)
    gc.collect()
    gc.freeze()
    try:
        for _ in range(repeats):
            for key, fn in timers.items():
                best[key] = min(best[key], sample(fn))
    finally:
        gc.unfreeze()
    bandwidth = (docs.nbytes + tfs.nbytes) / best["read"]
    out["read_bandwidth_bytes_per_s"] = round(bandwidth)
    today = {str(k): best[f"search/{k}"] for k in KS}
    search_only = {str(k): best[f"batch/{k}"] for k in KS}
    out["query_seconds"] = {k: round(s, 5) for k, s in today.items()}
    out["queries_per_second"] = {k: round(len(queries) / s, 1) for k, s in today.items()}
    out["search_batch_seconds"] = {k: round(s, 5) for k, s in search_only.items()}
    q_plain = q_postings * (docs.itemsize + tfs.itemsize)
    for label, (enc_docs, enc_tfs) in encoded.items():
        docs_s, tfs_s = best[f"{label}/index/docs"], best[f"{label}/index/tfs"]
        out["decode"][label] = {"docs_seconds": round(docs_s, 5), "tfs_seconds": round(tfs_s, 5),
                                "postings_per_s": round(n_post / (docs_s + tfs_s)),
                                "docs_postings_per_s": round(n_post / docs_s),
                                "ns_per_posting": round((docs_s + tfs_s) / n_post * 1e9, 3)}
        decode_s = best[f"{label}/queries/docs"] + best[f"{label}/queries/tfs"]
        list_bytes = 4 * (np.diff(enc_docs.starts) + np.diff(enc_tfs.starts)) + SKIP_BYTES * np.where(
            df > BLOCK, (df + BLOCK - 1) // BLOCK, 0)
        q_bytes = np.array([int(list_bytes[t].sum()) for t in lists], np.int64)
        saved_read_s = float((q_plain - q_bytes).sum()) / bandwidth
        row: dict[str, Any] = {
            "mean_bytes": round(float(q_bytes.mean()), 1), "mean_bytes_uncompressed": round(float(q_plain.mean()), 1),
            "decode_us_mean": round(decode_s / len(lists) * 1e6, 3),
            "decode_ns_per_posting": round(decode_s / max(len(q_index), 1) * 1e9, 3),
            "read_saving_us_mean": round(saved_read_s / len(lists) * 1e6, 3), "k": {}}
        for key, seconds in today.items():
            row["k"][key] = {"query_us_mean": round(seconds / len(queries) * 1e6, 3),
                             "decode_fraction": round(decode_s / seconds, 4),
                             "net_fraction": round((decode_s - saved_read_s) / seconds, 4),
                             "search_batch_us_mean": round(search_only[key] / len(queries) * 1e6, 3),
                             "decode_fraction_of_search_batch": round(decode_s / search_only[key], 4)}
        out["per_query"][label] = row
        size = out["size"][label]
        print(f"{name} {label}: {size['bytes_per_posting']} B/posting ({size['ratio']:.2f}x), "
              f"{out['decode'][label]['postings_per_s'] / 1e6:,.0f} M postings/s, "
              f"+{row['decode_us_mean']:.1f} us/query "
              f"({row['k']['10']['decode_fraction']:.1%} at k=10)", file=sys.stderr, flush=True)
    out["process_memory"] = process_memory(Path(col.path), queries)
    return out


def memory_outlook(runs: list[dict[str, Any]], target_docs: int) -> dict[str, Any]:
    """Where the postings, and the whole collection, stop fitting in RAM beside the search process: bytes per
    document from the largest collection, the process's private memory fitted linearly over the collections."""
    with open("/proc/meminfo") as f:
        mem_total = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal"))
    by_docs = {r["docs"]: r["process_memory"]["rss_anon_bytes"] for r in runs}
    largest = max(runs, key=lambda r: r["docs"])
    if len(by_docs) >= 2:
        slope, intercept = np.polyfit(list(by_docs), list(by_docs.values()), 1)
    else:
        slope, intercept = by_docs[largest["docs"]] / largest["docs"], 0.0
    n = largest["docs"]
    sizes = largest["collection_bytes"]
    out: dict[str, Any] = {
        "ram_bytes": mem_total, "from_dataset": largest["dataset"],
        "process_bytes_per_doc": round(float(slope), 2), "process_bytes_fixed": round(float(intercept)),
        "target_docs": target_docs, "process_bytes_at_target": round(float(intercept + slope * target_docs)),
        # stored documents, ids, metadata, vocabulary, per-term and per-document arrays: linear in documents is
        # an upper bound for the vocabulary's part, which grows more slowly
        "rest_bytes_per_doc": round((sizes["other"] + sizes["bm25_other"]) / n, 2), "formats": {}}
    for label, size in largest["size"].items():
        postings_per_doc = size["total_bytes"] / n
        whole_per_doc = postings_per_doc + out["rest_bytes_per_doc"]
        out["formats"][label] = {
            "postings_bytes_per_doc": round(postings_per_doc, 2),
            "postings_bytes_at_target": round(postings_per_doc * target_docs),
            "collection_bytes_at_target": round(whole_per_doc * target_docs),
            # largest N with bytes(N) + process(N) <= RAM
            "postings_fit_up_to_docs": int((mem_total - intercept) / (postings_per_doc + slope)),
            "collection_fits_up_to_docs": int((mem_total - intercept) / (whole_per_doc + slope))}
    return out


def conclusions(runs: list[dict[str, Any]], outlook: dict[str, Any]) -> dict[str, Any]:
    """The verdicts, each from the measured numbers above (nothing decided in advance)."""
    main = max(runs, key=lambda r: r["docs"])
    codecs = list(CODECS)
    size, decode, per_query = main["size"], main["decode"], main["per_query"]
    smallest = min(codecs, key=lambda c: size[c]["total_bytes"])
    fastest = max(codecs, key=lambda c: decode[c]["postings_per_s"])
    # pays for speed: the decode time stays under the most that reading fewer bytes could save, at every k
    speed_pays = {r["dataset"]: {c: all(v["net_fraction"] < 0 for v in r["per_query"][c]["k"].values())
                                 for c in codecs} for r in runs}
    any_speed = any(any(v.values()) for v in speed_pays.values())
    fractions = [v["decode_fraction"] for r in runs for c in codecs for v in r["per_query"][c]["k"].values()]
    plain, best = outlook["formats"]["uncompressed"], outlook["formats"][smallest]
    needed = plain["collection_bytes_at_target"] + outlook["process_bytes_at_target"] > outlook["ram_bytes"]
    target = outlook["target_docs"]
    maxscore = main["query_postings"]["maxscore_queries"]
    shrink = (size["uncompressed"]["total_bytes"] - size[smallest]["total_bytes"]) / sum(
        main["collection_bytes"].values())
    fastest_k = "; ".join(
        f"k={k}: {v['decode_fraction']:.1%} of today's {v['query_us_mean']:.1f} us a query "
        f"({v['decode_fraction_of_search_batch']:.1%} of the {v['search_batch_us_mean']:.1f} us past query analysis)"
        for k, v in per_query[fastest]["k"].items())
    speed = (
        f"Query speed (in memory): {'pays' if any_speed else 'does not pay'}. On {main['dataset']} the fastest "
        f"decoder ({fastest}, {decode[fastest]['postings_per_s'] / 1e6:,.0f} M postings/s) adds "
        f"{per_query[fastest]['decode_us_mean']:.1f} us to a query of {main['query_postings']['mean']:,.0f} postings "
        f"on average — {fastest_k} — while reading {1 - size[fastest]['ratio']:.0%} fewer bytes saves at most "
        f"{per_query[fastest]['read_saving_us_mean']:.1f} us at the measured "
        f"{main['read_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s. Over every dataset, codec and k the decoding adds "
        f"{min(fractions):.1%} to {max(fractions):.1%}. Queries the cost rule sends to MaxScore: "
        f"{', '.join(f'{v} at k={k}' for k, v in maxscore.items())} of {main['queries']}, so the postings counted "
        "are exactly what today's kernel reads"
        + (" (an upper bound for those)." if any(maxscore.values()) else "."))
    sized = (
        f"Size: {'pays' if size[smallest]['ratio'] < 1 else 'does not pay'}. {smallest} stores {main['dataset']}'s "
        f"postings in {size[smallest]['bytes_per_posting']} bytes/posting vs "
        f"{size['uncompressed']['bytes_per_posting']} ({size[smallest]['ratio']:.2f}x, skip entries included, "
        f"{size['uncompressed']['total_bytes'] / 1e6:,.0f} -> {size[smallest]['total_bytes'] / 1e6:,.0f} MB); the "
        f"whole collection folder (stored documents included) shrinks by {shrink:.0%}.")
    first = ("stored documents, not postings, fill the cache first"
             if outlook["rest_bytes_per_doc"] > plain["postings_bytes_per_doc"] else "postings fill the cache first")
    cache = (
        f"Page cache: at {target:,} documents the collection is ~{plain['collection_bytes_at_target'] / 1e9:.1f} GB "
        f"({plain['postings_bytes_at_target'] / 1e9:.1f} GB of it postings) beside "
        f"~{outlook['process_bytes_at_target'] / 1e9:.1f} GB of search-process memory, in "
        f"{outlook['ram_bytes'] / 2**30:.0f} GiB of RAM: it {'does not fit' if needed else 'fits'}, so compression "
        f"is {'needed' if needed else 'not needed'} there. Uncompressed postings alone stop fitting at "
        f"~{plain['postings_fit_up_to_docs'] / 1e6:,.0f}M documents ({smallest}: "
        f"~{best['postings_fit_up_to_docs'] / 1e6:,.0f}M), the whole collection at "
        f"~{plain['collection_fits_up_to_docs'] / 1e6:,.0f}M ({smallest}: "
        f"~{best['collection_fits_up_to_docs'] / 1e6:,.0f}M): {first}. Past that, a query whose lists are not "
        "cached reads them from disk: "
        f"{per_query[smallest]['mean_bytes_uncompressed'] / 1e3:,.0f} KB uncompressed vs "
        f"{per_query[smallest]['mean_bytes'] / 1e3:,.0f} KB with {smallest} on average at {main['docs']:,} documents "
        f"(growing with the collection); the {main['queries']} queries touch "
        f"{main['query_postings']['working_set_fraction']:.0%} of the postings.")
    return {
        "pays_for_query_speed_in_memory": speed_pays,
        "pays_for_size": {c: size[c]["ratio"] < 1 for c in codecs},
        "needed_for_page_cache_at_target": needed,
        "smallest_codec": smallest, "fastest_codec": fastest,
        "text": [speed, sized, cache],
        "kernel_cost": [
            "Index format: new postings files (per list: 128-posting blocks of packed d-gaps and tf - 1, plus a skip "
            "array of last document and byte offset per block), a format version in segment.json, the builder, the "
            "run spill files and the bucketed merge writing blocks, and readers of both formats until old "
            "segments are merged away.",
            "Kernel: the accumulate loops and term_bounds decode a block into a 128-entry buffer before scoring; "
            "MaxScore seeks gallop over the skip array and decode the landing block once (cached per cursor); "
            "block maxima move from 64 to the codec's 128 postings (or the codec runs on 64).",
            "Build: a vendored C decoder (FastPFor/streamvbyte are C/C++ with SIMD paths chosen at run time) in the "
            "extension, whose build has no C++ today, and the numpy fallback path needs the same decoder.",
        ],
    }


def render(result: dict[str, Any]) -> str:
    """The BENCHMARKS.md section (benchmarks/report.py calls this with the results file)."""
    codecs = list(result["codecs"])
    lines = [
        "## BM25 posting compression: does it pay for itself? (issue 17)", "",
        f"`python benchmarks/run_posting_compression.py` ({result['date']}; {result['machine']['cpus']} shared "
        f"cores, load {result['machine']['load_average_start'][0]} at start, "
        f"{result['machine']['load_average_end'][0]} at end; pyfastpfor {result['library']['pyfastpfor']}). "
        "Each term's list of the real index, read through the package's reader, encoded by FastPFor codecs "
        "(document gaps and tf - 1), decoded back and checked; skip entries (8 bytes per block of 128 postings, for "
        "MaxScore's seeks) counted in. Decode speed: one thread, the whole index as one stream per array "
        f"(documents: decode + prefix sum; tfs: decode), best of {result['repeats']}. Per query: the postings of "
        "its terms (what today's kernel reads on its exhaustive path; an upper bound for a query its cost rule sends "
        "to MaxScore), KB they take, and the time decoding them adds over today's batch search time, one thread, same "
        "run; *net*: after taking off the most that reading fewer bytes could save at the measured read "
        "bandwidth.", ""]
    from report_common import markdown_table

    for r in result["runs"]:
        ks = list(r["queries_per_second"])
        lines += [f"**{r['dataset']}**: {r['docs']:,} documents, {r['postings']:,} postings, {r['queries']} queries "
                  f"({r['mean_query_words']} words, {r['query_postings']['mean']:,.0f} postings each on average), "
                  f"today {', '.join(f'{q:,.0f} q/s at k={k}' for k, q in r['queries_per_second'].items())}; "
                  "queries sent to MaxScore: "
                  f"{', '.join(f'{n} at k={k}' for k, n in r['query_postings']['maxscore_queries'].items())}.", ""]
        plain = r["size"]["uncompressed"]
        rows = [[f"uncompressed (uint32 docs, {r['tf_dtype']} tfs)", plain["bytes_per_posting"],
                 f"{plain['total_bytes'] / 1e6:,.1f}", "1.00", "",
                 f"{r['per_query'][codecs[0]]['mean_bytes_uncompressed'] / 1e3:,.1f}", "", *[""] * (2 * len(ks))]]
        for c in codecs:
            size, dec, pq = r["size"][c], r["decode"][c], r["per_query"][c]
            rows.append([c, size["bytes_per_posting"], f"{size['total_bytes'] / 1e6:,.1f}", f"{size['ratio']:.2f}",
                         f"{dec['postings_per_s'] / 1e6:,.0f}", f"{pq['mean_bytes'] / 1e3:,.1f}",
                         f"{pq['decode_us_mean']:.1f}",
                         *[cell for k in ks for cell in (f"+{pq['k'][k]['decode_fraction']:.1%}",
                                                         f"{pq['k'][k]['net_fraction']:+.1%}")]])
        lines += markdown_table(["format", "bytes/posting", "postings MB", "×size", "decode M postings/s",
                                 "KB/query", "decode µs/query",
                                 *[h for k in ks for h in (f"+ query time k={k}", f"net k={k}")]], rows)
        lines.append("")
    lines += ["Codecs: " + "; ".join(f"{c} = {d}" for c, d in result["codecs"].items()) + ".", "",
              "**Conclusions**", ""]
    lines += [f"* {t}" for t in result["conclusions"]["text"]]
    lines += ["", "What putting it into the kernel would take (the kernel and index format are unchanged):", ""]
    lines += [f"* {t}" for t in result["conclusions"]["kernel_cost"]]
    return "\n".join([*lines, ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="synthetic-1000000,scifact,scifact-long")
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--target-docs", type=int, default=10_000_000, help="collection size of the memory outlook")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    try:
        import pyfastpfor  # noqa: F401
    except ImportError:
        raise SystemExit("pyfastpfor is missing: pip install 'retrievekit[bench]'") from None
    start_load = load_avg()
    runs = [study(name, args.data_root, args.repeats) for name in args.datasets.split(",") if name]
    outlook = memory_outlook(runs, args.target_docs)
    result = {"benchmark": "posting_compression", "date": time.strftime("%Y-%m-%d"),
              "machine": {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                          "load_average_start": start_load, "load_average_end": load_avg()},
              "library": {"pyfastpfor": version("pyfastpfor")}, "repeats": args.repeats, "threads": 1,
              "codecs": {c: d for c, (_, d) in CODECS.items()}, "block": BLOCK, "skip_bytes_per_block": SKIP_BYTES,
              "runs": runs, "memory": outlook}
    result["conclusions"] = conclusions(runs, outlook)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print("\n".join(result["conclusions"]["text"]), file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
