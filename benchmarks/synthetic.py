"""Deterministic generator of a large synthetic BEIR-format corpus for BM25 speed/memory benchmarks.

Real test collections on this machine are small (a few thousand documents), which says little about how
an engine scales.  This script writes a corpus shaped like MS MARCO passages:

* vocabulary: a few hundred thousand English-looking lowercase pseudo-words (syllables + common English
  suffixes, so the Snowball stemmer conflates some of them as it would real words), ranked by a Zipf law
  (exponent ~1.05); the head ranks are real English function words, so stop-word lists remove a
  realistic share (~35 %) of tokens; shorter words get the frequent ranks (Zipf's law of abbreviation);
* documents: log-normal lengths (mean ~70 tokens) plus a heavy tail of long documents, and a title;
  a fraction of every document's tokens comes from one of a few thousand "topics" (small Zipfian word
  sets drawn from mid-frequency ranks), which gives realistic burstiness (terms repeat inside a document);
* queries: 2-6 terms, mostly mid/low-frequency terms of a seed document, mixed with words of the seed's
  topic (which the document may lack, and which other documents of the topic share) and sometimes a
  function word; ``qrels/test.tsv`` marks the seed document relevant (one judged document per query,
  like MS MARCO), so nDCG/recall are defined and not trivially perfect.

All token sampling is vectorised numpy; the output is a pure function of ``--seed`` and the size arguments.

Usage: ``python benchmarks/synthetic.py OUT_DIR [--docs 1000000] [--queries 1000] [--seed 13]``
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2
META_FILE = "synthetic.json"

# Real English function words, roughly in corpus-frequency order.  They take the head Zipf ranks so that
# stop-word removal and idf behave as on real text.  Most of Lucene's 33 English stop words are here.
HEAD_WORDS: tuple[str, ...] = (
    "the", "of", "and", "to", "a", "in", "is", "for", "that", "on", "with", "as", "by", "was", "are",
    "it", "from", "at", "be", "this", "an", "or", "which", "not", "have", "has", "were", "their", "can",
    "but", "also", "these", "its", "been", "more", "other", "than", "such", "into", "between", "there",
    "they", "will", "if", "no", "then", "we", "all", "may", "one", "two", "new", "used", "first",
)

# Real English words that generated pseudo-words must not collide with (stop words of common lists and
# very frequent short words), so that stop-word lists only ever hit the intended head ranks.
_RESERVED_WORDS: frozenset[str] = frozenset(
    HEAD_WORDS
    + (
        "about", "above", "after", "again", "against", "am", "any", "because", "before", "being", "below",
        "both", "did", "do", "does", "doing", "down", "during", "each", "few", "further", "had", "having",
        "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "itself", "just", "me",
        "most", "my", "myself", "nor", "now", "off", "once", "only", "our", "ours", "ourselves", "out",
        "over", "own", "same", "she", "should", "so", "some", "them", "themselves", "those", "through",
        "too", "under", "until", "up", "very", "what", "when", "where", "while", "who", "whom", "why",
        "you", "your", "yours", "yourself", "yourselves", "would", "could", "shall", "must", "might",
        "upon", "via", "per", "yet", "thus", "hence", "though", "whether", "within", "without", "among",
    )
)

_ONSETS = (
    "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
    "br", "cr", "dr", "fr", "gr", "pr", "tr", "bl", "cl", "fl", "gl", "pl", "sl", "st", "sp", "sc",
    "sm", "sn", "sw", "ch", "sh", "th", "ph", "wh", "qu", "",
)
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "i", "o", "ea", "ou", "ai", "io", "ee", "oo", "y")
_CODAS = (
    "", "", "", "", "", "", "", "", "", "", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "rk",
    "ct", "nt", "rt", "x", "ck",
)
_SUFFIXES = (
    "s", "s", "es", "ed", "ing", "er", "ers", "ly", "tion", "tions", "al", "ic", "ous", "ment", "ness",
    "ity", "ive", "able", "ism", "ist", "ize", "ized", "ate", "ated",
)

_INFLECTIONS = ("s", "ed", "ing", "es", "er", "ly")


@dataclass(frozen=True)
class SyntheticConfig:
    """Every parameter that shapes the corpus; written to ``synthetic.json`` next to the data."""

    docs: int = 1_000_000
    queries: int = 1_000
    seed: int = 13
    vocab_size: int = 300_000
    zipf_exponent: float = 1.05
    mean_doc_len: float = 68.0  # body tokens, bulk of the distribution
    doc_len_sigma: float = 0.55
    tail_fraction: float = 0.03  # share of long documents
    tail_mean_len: float = 260.0
    tail_sigma: float = 0.7
    max_doc_len: int = 3_000
    mean_title_len: float = 7.0
    empty_title_fraction: float = 0.03
    topics: int = 5_000
    topic_words: int = 300
    topical_fraction_body: float = 0.35
    topical_fraction_title: float = 0.7
    chunk_docs: int = 50_000


def _zipf_cdf(n: int, exponent: float) -> np.ndarray:
    """Cumulative distribution of a Zipf law truncated to ranks 1..n (float64, last value exactly 1)."""
    weights = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    cdf[-1] = 1.0
    return cdf


def _sample(cdf: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``size`` 0-based ranks from a discrete distribution given by its CDF (inverse-CDF sampling)."""
    return np.searchsorted(cdf, rng.random(size), side="right").astype(np.int32)


def build_vocabulary(size: int, rng: np.random.Generator) -> list[str]:
    """Return ``size`` distinct words ordered by Zipf rank: the English head words, then pseudo-words.

    Pseudo-words get ranks by length plus noise, so frequent words are short, as in natural language.
    """
    n_pseudo = size - len(HEAD_WORDS)
    if n_pseudo <= 0:
        raise ValueError(f"vocab_size must exceed {len(HEAD_WORDS)} (the head words), got {size}")
    words: dict[str, None] = {}
    batch = int(n_pseudo * 1.3) + 1000
    while len(words) < n_pseudo:
        n_syll = rng.choice(np.array([1, 2, 3, 4]), size=batch, p=[0.22, 0.48, 0.25, 0.05])
        onsets = rng.integers(0, len(_ONSETS), size=(batch, 4))
        vowels = rng.integers(0, len(_VOWELS), size=(batch, 4))
        codas = rng.integers(0, len(_CODAS), size=(batch, 4))
        has_suffix = rng.random(batch) < 0.3
        suffixes = rng.integers(0, len(_SUFFIXES), size=batch)
        # inflectional families: some words also appear with one or two inflected forms, so that the
        # stemmer conflates a realistic share of the vocabulary
        n_inflections = rng.choice(np.array([0, 1, 2]), size=batch, p=[0.55, 0.3, 0.15])
        inflections = rng.integers(0, len(_INFLECTIONS), size=(batch, 2))
        for i in range(batch):
            parts = [
                _ONSETS[onsets[i, j]] + _VOWELS[vowels[i, j]] + _CODAS[codas[i, j]] for j in range(n_syll[i])
            ]
            word = "".join(parts)
            if has_suffix[i]:
                word += _SUFFIXES[suffixes[i]]
            if len(word) < 3 or word in _RESERVED_WORDS:
                continue
            family = [word] + [word + _INFLECTIONS[inflections[i, j]] for j in range(n_inflections[i])]
            for form in family:
                words[form] = None
            if len(words) >= n_pseudo:
                break
    pseudo = np.array(list(words)[:n_pseudo], dtype=object)
    lengths = np.fromiter((len(w) for w in pseudo), dtype=np.float64, count=len(pseudo))
    order = np.argsort(lengths + rng.normal(0.0, 2.0, size=len(pseudo)), kind="stable")
    return list(HEAD_WORDS) + pseudo[order].tolist()


def _doc_lengths(cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """Body lengths: log-normal bulk (mean ``mean_doc_len``) mixed with a log-normal long tail."""
    mu = np.log(cfg.mean_doc_len) - cfg.doc_len_sigma**2 / 2
    lengths = rng.lognormal(mu, cfg.doc_len_sigma, size=cfg.docs)
    tail = rng.random(cfg.docs) < cfg.tail_fraction
    tail_mu = np.log(cfg.tail_mean_len) - cfg.tail_sigma**2 / 2
    lengths[tail] = rng.lognormal(tail_mu, cfg.tail_sigma, size=int(tail.sum()))
    return np.clip(np.rint(lengths), 4, cfg.max_doc_len).astype(np.int64)


def _title_lengths(cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    lengths = 2 + rng.poisson(cfg.mean_title_len - 2, size=cfg.docs)
    lengths[rng.random(cfg.docs) < cfg.empty_title_fraction] = 0
    return lengths.astype(np.int64)


def _topic_table(cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """(topics, topic_words) int32 table of vocabulary ranks, drawn from mid/low-frequency ranks.

    Ranks are drawn with probability ~ rank^-0.6 over [300, vocab), which favours mid-frequency words
    without excluding the rare ones.
    """
    lo = min(300, cfg.vocab_size // 2)
    ranks = np.arange(lo, cfg.vocab_size, dtype=np.float64)
    cdf = np.cumsum((ranks + 1) ** -0.6)
    cdf /= cdf[-1]
    picks = np.searchsorted(cdf, rng.random(cfg.topics * cfg.topic_words), side="right")
    return (picks + lo).astype(np.int32).reshape(cfg.topics, cfg.topic_words)


def _mixed_tokens(
    lengths: np.ndarray,
    topic_of_doc: np.ndarray,
    topical_fraction: float,
    global_cdf: np.ndarray,
    topic_cdf: np.ndarray,
    topic_table: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Sample the flat token array (vocabulary ranks) of a run of documents with the given lengths."""
    total = int(lengths.sum())
    tokens = _sample(global_cdf, total, rng)
    topical = rng.random(total) < topical_fraction
    n_topical = int(topical.sum())
    doc_topic = np.repeat(topic_of_doc, lengths)[topical]
    tokens[topical] = topic_table[doc_topic, _sample(topic_cdf, n_topical, rng)]
    return tokens


def _join_docs(words: list[str], tokens: np.ndarray, lengths: np.ndarray) -> list[str]:
    """Turn a flat token array plus per-document lengths into one space-joined string per document."""
    flat = [words[t] for t in tokens.tolist()]
    out: list[str] = []
    start = 0
    for n in lengths.tolist():
        out.append(" ".join(flat[start : start + n]))
        start += n
    return out


def _make_query(
    doc_tokens: np.ndarray,
    topic_words: np.ndarray,
    topic_cdf: np.ndarray,
    words: list[str],
    rng: np.random.Generator,
) -> str | None:
    """Build one 2-6 term query for a seed document; None if the document has too few content terms.

    The first term, and each further term with probability 0.55, is one of the document's own
    mid/low-frequency terms (picked in proportion to its frequency in the document); the other terms
    are words of the document's topic, which the document may lack (vocabulary mismatch) and which its
    topic siblings share (competition).  A quarter of the queries also get a function word.
    """
    unique, counts = np.unique(doc_tokens, return_counts=True)
    content = unique >= 100  # mid/low-frequency terms only (no function words)
    candidates, weights = unique[content], counts[content].astype(np.float64)
    if len(candidates) < 2:
        return None
    n_terms = int(rng.choice(np.array([2, 3, 4, 5, 6]), p=[0.2, 0.3, 0.25, 0.15, 0.1]))
    from_doc = 1 + int((rng.random(n_terms - 1) < 0.55).sum())
    from_doc = min(from_doc, len(candidates))
    chosen = rng.choice(candidates, size=from_doc, replace=False, p=weights / weights.sum()).tolist()
    topical = topic_words[_sample(topic_cdf, n_terms - from_doc, rng)].tolist()
    terms = list(dict.fromkeys(chosen + topical))
    rng.shuffle(terms)
    text = [words[t] for t in terms]
    if rng.random() < 0.25:
        text.insert(int(rng.integers(len(text) + 1)), words[int(rng.integers(0, 12))])
    return " ".join(text)


def generate(out_dir: Path, cfg: SyntheticConfig) -> dict[str, object]:
    """Write ``corpus.jsonl``, ``queries.jsonl``, ``qrels/test.tsv`` and ``synthetic.json`` to ``out_dir``.

    ``synthetic.json`` is written last, so its presence means the corpus is complete.  Returns its content.
    """
    if cfg.docs < 10:
        raise ValueError(f"--docs must be at least 10, got {cfg.docs}")
    if cfg.queries < 1 or cfg.queries > cfg.docs:
        raise ValueError(f"--queries must be between 1 and --docs ({cfg.docs}), got {cfg.queries}")
    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "qrels").mkdir(exist_ok=True)
    meta_path = out_dir / META_FILE
    meta_path.unlink(missing_ok=True)

    rng = np.random.default_rng([cfg.seed, 0])
    words = build_vocabulary(cfg.vocab_size, rng)
    global_cdf = _zipf_cdf(cfg.vocab_size, cfg.zipf_exponent)
    topic_cdf = _zipf_cdf(cfg.topic_words, 1.0)
    topic_table = _topic_table(cfg, rng)
    body_len = _doc_lengths(cfg, rng)
    title_len = _title_lengths(cfg, rng)
    topic_of_doc = rng.integers(0, cfg.topics, size=cfg.docs).astype(np.int32)
    logger.info("vocabulary and document plan ready in %.1f s", time.perf_counter() - t0)

    # seed documents for the queries: uniformly among documents with a reasonably long body
    qrng = np.random.default_rng([cfg.seed, 2])
    eligible = np.flatnonzero(body_len >= 12)
    seeds = np.sort(qrng.choice(eligible, size=min(cfg.queries, len(eligible)), replace=False))
    queries: list[tuple[str, str, str]] = []  # (query id, text, relevant doc id)

    id_width = len(str(cfg.docs - 1))
    n_tokens = 0
    with open(out_dir / "corpus.jsonl", "w", encoding="utf-8") as corpus:
        for chunk_no, start in enumerate(range(0, cfg.docs, cfg.chunk_docs)):
            stop = min(start + cfg.chunk_docs, cfg.docs)
            crng = np.random.default_rng([cfg.seed, 1, chunk_no])
            blen, tlen, topics = body_len[start:stop], title_len[start:stop], topic_of_doc[start:stop]
            body = _mixed_tokens(
                blen, topics, cfg.topical_fraction_body, global_cdf, topic_cdf, topic_table, crng
            )
            title = _mixed_tokens(
                tlen, topics, cfg.topical_fraction_title, global_cdf, topic_cdf, topic_table, crng
            )
            n_tokens += len(body) + len(title)
            bodies, titles = _join_docs(words, body, blen), _join_docs(words, title, tlen)
            # words are [a-z]+ only, so the JSON can be assembled without escaping
            corpus.write(
                "".join(
                    f'{{"_id": "d{start + i:0{id_width}d}", "title": "{titles[i]}", "text": "{bodies[i]}"}}\n'
                    for i in range(stop - start)
                )
            )
            body_off = np.concatenate(([0], np.cumsum(blen)))
            title_off = np.concatenate(([0], np.cumsum(tlen)))
            for doc in seeds[(seeds >= start) & (seeds < stop)].tolist():
                j = doc - start
                toks = np.concatenate(
                    (body[body_off[j] : body_off[j + 1]], title[title_off[j] : title_off[j + 1]])
                )
                text = _make_query(toks, topic_table[topics[j]], topic_cdf, words, qrng)
                if text is not None:
                    queries.append((f"q{len(queries)}", text, f"d{doc:0{id_width}d}"))
            logger.info("%d/%d documents written (%.1f s)", stop, cfg.docs, time.perf_counter() - t0)

    with open(out_dir / "queries.jsonl", "w", encoding="utf-8") as fq:
        for qid, text, _ in queries:
            fq.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with open(out_dir / "qrels" / "test.tsv", "w", encoding="utf-8") as fr:
        fr.write("query-id\tcorpus-id\tscore\n")
        for qid, _, doc_id in queries:
            fr.write(f"{qid}\t{doc_id}\t1\n")

    meta: dict[str, object] = {
        "format_version": FORMAT_VERSION,
        "config": asdict(cfg),
        "documents": cfg.docs,
        "queries": len(queries),
        "tokens": n_tokens,
        "mean_tokens_per_doc": round(n_tokens / cfg.docs, 2),
        "corpus_bytes": (out_dir / "corpus.jsonl").stat().st_size,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def is_complete(out_dir: Path, cfg: SyntheticConfig) -> bool:
    """True when ``out_dir`` already holds a finished corpus generated with exactly ``cfg``."""
    try:
        meta = json.loads((out_dir / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return meta.get("format_version") == FORMAT_VERSION and meta.get("config") == asdict(cfg)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="output folder (created)")
    parser.add_argument("--docs", type=int, default=SyntheticConfig.docs, help="number of documents")
    parser.add_argument("--queries", type=int, default=SyntheticConfig.queries, help="number of queries")
    parser.add_argument("--seed", type=int, default=SyntheticConfig.seed, help="random seed")
    parser.add_argument("--force", action="store_true", help="regenerate even if an identical corpus exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = SyntheticConfig(docs=args.docs, queries=args.queries, seed=args.seed)
    if not args.force and is_complete(args.out_dir, cfg):
        logger.info("%s already holds this corpus; use --force to regenerate", args.out_dir)
        return 0
    try:
        meta = generate(args.out_dir, cfg)
    except ValueError as exc:
        parser.error(str(exc))
    logger.info("done: %s", json.dumps({k: v for k, v in meta.items() if k != "config"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
