"""The English evaluation sets in ../shared/data used by the dense and hybrid benchmarks."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# name -> (folder, split, corpus file)
ENGLISH_SETS: dict[str, tuple[Path, str, str]] = {
    "scifact": (DATA / "scifact", "test", "corpus.jsonl"),
    "cosqa": (DATA / "cosqa", "test", "corpus.jsonl"),
    "xquad-r-en-paragraphs": (DATA / "xquad-r" / "en", "test_paragraphs", "paragraphs.jsonl"),
    "cranfield": (DATA / "cranfield", "test", "corpus.jsonl"),
    "cacm": (DATA / "cacm", "test", "corpus.jsonl"),
    "squad-v1.1-dev": (DATA / "squad-v1.1-dev", "test", "corpus.jsonl"),
    "nfcorpus-orig-test": (DATA / "nfcorpus-orig-test", "test", "corpus.jsonl"),
}

# Extra runs of a set with another BM25 analyzer: cosqa is code search, where retrievekit's code-aware `identifier`
# analyzer (camelCase/snake_case splitting) is the natural choice. Reported beside, not instead of, the default.
VARIANTS: dict[str, tuple[str, str]] = {
    "cosqa-identifier": ("cosqa", "identifier"),
}
