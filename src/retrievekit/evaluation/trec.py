"""Read and write TREC run files, TREC qrels and BEIR qrels TSV.

Formats (fields separated by any whitespace, except BEIR TSV which uses tabs):

* run:   ``qid Q0 docid rank score tag`` - the rank column is ignored on reading, as trec_eval
  ignores it; the order is re-derived from the scores.
* TREC qrels: ``qid iteration docid relevance`` - the iteration column is ignored.
* BEIR qrels: ``query-id<TAB>corpus-id<TAB>score`` with an optional header line.

Files ending in ``.gz`` are read and written gzip-compressed.
"""

from __future__ import annotations

import gzip
import io
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Literal

from retrievekit.core.errors import InputFormatError
from retrievekit.evaluation.metrics import Qrels, Run

logger = logging.getLogger(__name__)

QrelsFormat = Literal["trec", "beir"]
_BEIR_HEADER = ("query-id", "corpus-id", "score")
_WHITESPACE = re.compile(r"\s")
_TSV_SEPARATOR = re.compile(r"[\t\r\n]")


def _open_binary(path: Path, mode: Literal["rb", "wb"]) -> IO[bytes]:
    return gzip.open(path, mode) if path.suffix == ".gz" else open(path, mode)  # type: ignore[return-value]


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers.

    Decoded line by line (not through a text wrapper) so a bad byte is reported at its own line.
    """
    with _open_binary(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputFormatError(f"not valid UTF-8: {exc}", path, lineno) from None
            if lineno == 1:
                line = line.removeprefix("\ufeff")  # a byte-order mark some editors add
            if line.strip():
                yield lineno, line


def _writer(path: Path) -> IO[str]:
    return io.TextIOWrapper(_open_binary(path, "wb"), encoding="utf-8", newline="\n")


def _parse_int(text: str, what: str, path: Path, lineno: int) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputFormatError(f"{what} {text!r} is not an integer", path, lineno) from None


# ----------------------------------------------------------------------------- runs


def read_run(path: str | Path) -> Run:
    """Read a TREC run file into ``{qid: {docid: score}}``; a document repeated in a query is an error."""
    path = Path(path)
    run: Run = {}
    for lineno, line in _lines(path):
        fields = line.split()
        if len(fields) != 6:
            raise InputFormatError(
                f"expected 6 fields 'qid Q0 docid rank score tag', found {len(fields)}", path, lineno)
        qid, _, docid, _, score_text, _ = fields
        try:
            score = float(score_text)
        except ValueError:
            raise InputFormatError(f"score {score_text!r} is not a number", path, lineno) from None
        docs = run.setdefault(qid, {})
        if docid in docs:
            raise InputFormatError(f"document {docid!r} appears twice for query {qid!r}", path, lineno)
        docs[docid] = score
    return run


def _check_id(value: str, what: str, *, tsv: bool = False) -> None:
    """Refuse ids that would break the line format (any whitespace for TREC; tab or newline for TSV)."""
    if not value or (_TSV_SEPARATOR if tsv else _WHITESPACE).search(value):
        kind = "tab-separated BEIR" if tsv else "whitespace-separated TREC"
        raise InputFormatError(f"{what} {value!r} is empty or contains a separator: it cannot be written "
                               f"to a {kind} file")


def write_run(run: Mapping[str, Mapping[str, float]], path: str | Path, tag: str = "retrievekit",
              *, depth: int | None = None) -> None:
    """Write a run in TREC format, queries in the run's order, each ranked as trec_eval ranks it.

    Documents are sorted by score descending, ties by docid descending, so the written ranks are the
    ones trec_eval will compute. ``depth`` keeps only the top documents of each query. Scores are
    written with ``repr`` so that reading the file back gives the very same floats.
    """
    path = Path(path)
    _check_id(tag, "run tag")
    with _writer(path) as f:
        for qid, docs in run.items():
            _check_id(qid, "query id")
            ranked = sorted(docs.items(), key=lambda item: (item[1], item[0]), reverse=True)
            for rank, (docid, score) in enumerate(ranked[:depth], 1):
                _check_id(docid, "document id")
                f.write(f"{qid} Q0 {docid} {rank} {float(score)!r} {tag}\n")


# ----------------------------------------------------------------------------- qrels


def _detect_format(path: Path) -> QrelsFormat:
    for lineno, line in _lines(path):
        if len(line.rstrip("\r\n").split("\t")) == 3:
            return "beir"
        if len(line.split()) == 4:
            return "trec"
        raise InputFormatError(
            "cannot tell the qrels format: expected 'qid 0 docid rel' (TREC) or a tab-separated "
            "'query-id corpus-id score' line (BEIR)", path, lineno)
    return "trec"  # an empty file: either reading gives empty qrels


def read_qrels(path: str | Path, format: QrelsFormat | None = None) -> Qrels:
    """Read TREC or BEIR qrels into ``{qid: {docid: relevance}}``; ``format=None`` detects it.

    A (query, document) pair judged twice with the same value is accepted; with different values it
    is an error, since it is ambiguous which one trec_eval-style tools would use.
    """
    path = Path(path)
    fmt = format or _detect_format(path)
    if fmt not in ("trec", "beir"):
        raise ValueError(f"unknown qrels format {format!r}; expected 'trec' or 'beir'")
    qrels: Qrels = {}
    first = True
    for lineno, line in _lines(path):
        if fmt == "beir":
            fields = line.rstrip("\r\n").split("\t")
            if first and tuple(f.strip().lower() for f in fields) == _BEIR_HEADER:
                first = False
                continue
            if len(fields) != 3:
                raise InputFormatError(
                    f"expected 3 tab-separated fields 'query-id corpus-id score', found {len(fields)}",
                    path, lineno)
            qid, docid, rel_text = (f.strip() for f in fields)
        else:
            fields = line.split()
            if len(fields) != 4:
                raise InputFormatError(
                    f"expected 4 fields 'qid iteration docid relevance', found {len(fields)}", path, lineno)
            qid, _, docid, rel_text = fields
        first = False
        rel = _parse_int(rel_text, "relevance", path, lineno)
        judged = qrels.setdefault(qid, {})
        if judged.get(docid, rel) != rel:
            raise InputFormatError(
                f"query {qid!r} document {docid!r} judged twice with different values "
                f"({judged[docid]} and {rel})", path, lineno)
        judged[docid] = rel
    return qrels


def write_qrels(qrels: Mapping[str, Mapping[str, int]], path: str | Path,
                format: QrelsFormat = "trec") -> None:
    """Write qrels as TREC (``qid 0 docid rel``) or BEIR TSV (with its header line)."""
    if format not in ("trec", "beir"):
        raise ValueError(f"unknown qrels format {format!r}; expected 'trec' or 'beir'")
    path = Path(path)
    with _writer(path) as f:
        beir = format == "beir"
        if beir:
            f.write("\t".join(_BEIR_HEADER) + "\n")
        for qid, docs in qrels.items():
            _check_id(qid, "query id", tsv=beir)
            for docid, rel in docs.items():
                _check_id(docid, "document id", tsv=beir)
                f.write(f"{qid}\t{docid}\t{int(rel)}\n" if beir else f"{qid} 0 {docid} {int(rel)}\n")
