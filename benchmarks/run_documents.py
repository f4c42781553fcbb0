"""Document ingestion speed and PDF extraction quality (issue 19).

Generates a corpus of multi-page PDFs (fpdf2: a bookmarked heading per page, paragraphs of standard-library
docstrings, a table on some pages) and DOCX files (python-docx: headings, paragraphs, a table) into
``benchmarks/work/documents`` — the same files for a given ``--seed`` — and measures, each phase in a fresh child
process so that its peak RSS is its own:

* **parse**: ``ingest.documents.parse_document`` on every file (pypdfium2 for PDFs, python-docx for DOCX): pages/s
  and files/s;
* **pdfminer**: pdfminer.six's ``extract_text`` on the same PDFs (pages split at its form feeds): pages/s;
* **ingest**: ``Collection.ingest`` of the whole folder into a fresh BM25 collection (one worker process, commit
  included) and the same into a passage collection (``sentences:128``, chunked page by page): documents/s, pages/s;
* **quality**: per PDF page, word-level F1 of each extractor's text against the words written on that page
  (order-free multiset overlap; words are ``\\w+`` runs, lower-cased), and the agreement between the two extractors
  (the same F1 between their texts) — mean and 5th percentile over pages.

Results: ``benchmarks/results/documents.json``; ``render()`` writes its BENCHMARKS.md section (``report.py``).

    python benchmarks/run_documents.py [--pdfs 350] [--docx 200] [--seed 19]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "documents.json"
WORK = REPO / "benchmarks" / "work" / "documents"
WORDS = re.compile(r"\w+")
PAGE_CHARS = 1_600  # about a page of 11-point text


# ----------------------------------------------------------------------------- corpus


def paragraphs(limit: int = 6_000) -> list[str]:
    """Docstrings of the standard library as paragraphs of printable Latin-1 (fpdf2's core fonts), 80+ chars."""
    from retrievekit.ingest.stdlib_corpus import iter_stdlib_documents

    out = []
    for doc in iter_stdlib_documents(limit=limit * 3):
        text = " ".join(doc.text.split())
        text = text.encode("latin-1", "ignore").decode("latin-1")
        text = "".join(ch for ch in text if ch.isprintable())
        if len(text) >= 80:
            out.append(text[:900])
        if len(out) >= limit:
            break
    return out


def page_texts(rng: random.Random, pool: list[str], pages: int) -> list[str]:
    out = []
    for _ in range(pages):
        text, size = [], 0
        while size < PAGE_CHARS:
            para = rng.choice(pool)
            text.append(para)
            size += len(para)
        out.append("\n".join(text))
    return out


def write_pdf(path: Path, pages: list[str], rng: random.Random) -> list[str]:
    """One PDF; returns the text written on each page (heading, paragraphs, table cells)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title(path.stem)
    pdf.set_auto_page_break(False)
    written = []
    for number, text in enumerate(pages, 1):
        pdf.add_page()
        heading = f"Section {number} of {path.stem}"
        pdf.start_section(heading, level=0)
        pdf.set_font("helvetica", "B", 14)
        pdf.cell(text=heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("helvetica", size=9)
        shown = []
        for para in text.split("\n"):
            if pdf.get_y() > 230:  # leave the rest of the page: the source text is what fits
                break
            pdf.multi_cell(0, 4.2, text=para, new_x="LMARGIN", new_y="NEXT")
            shown.append(para)
        cells: list[str] = []
        if rng.random() < 0.3 and pdf.get_y() < 240:
            rows = [["Name", "Value", "Note"]] + [[f"item{rng.randrange(1000)}", str(rng.randrange(10**6)),
                                                   rng.choice(["ok", "stale", "new"])] for _ in range(3)]
            with pdf.table(col_widths=(40, 40, 40), width=120) as table:
                for row in rows:
                    cells_row = table.row()
                    for cell in row:
                        cells_row.cell(cell)
                        cells.append(cell)
        written.append("\n".join([heading, *shown, *cells]))
    pdf.output(str(path))
    return written


def write_docx(path: Path, sections: list[str], rng: random.Random) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = path.stem
    for number, text in enumerate(sections, 1):
        document.add_heading(f"Section {number} of {path.stem}", level=1 + (number > 1 and rng.random() < 0.5))
        for para in text.split("\n"):
            document.add_paragraph(para)
        if rng.random() < 0.3:
            table = document.add_table(rows=4, cols=3)
            for r in range(4):
                for c in range(3):
                    table.cell(r, c).text = f"r{r}c{c}-{rng.randrange(1000)}"
    document.save(str(path))


def build_corpus(folder: Path, n_pdf: int, n_docx: int, seed: int) -> dict[str, Any]:
    """The corpus in ``folder`` (rebuilt when its manifest does not match the settings)."""
    settings = {"pdfs": n_pdf, "docx": n_docx, "seed": seed, "page_chars": PAGE_CHARS}
    manifest = folder / "corpus.json"
    if manifest.is_file():
        known = json.loads(manifest.read_text())
        if known["settings"] == settings:
            return known
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "files").mkdir(parents=True)
    rng = random.Random(seed)
    pool = paragraphs()
    truth: dict[str, list[str]] = {}
    pages = 0
    for i in range(n_pdf):
        name = f"report-{i:04d}.pdf"
        texts = page_texts(rng, pool, rng.randint(2, 12))
        truth[name] = write_pdf(folder / "files" / name, texts, rng)
        pages += len(texts)
    for i in range(n_docx):
        write_docx(folder / "files" / f"memo-{i:04d}.docx", page_texts(rng, pool, rng.randint(1, 6)), rng)
    known = {"settings": settings, "pdf_pages": pages, "truth": truth,
             "bytes": sum(p.stat().st_size for p in (folder / "files").iterdir())}
    manifest.write_text(json.dumps(known))
    return known


# ----------------------------------------------------------------------------- phases (each in a child process)


def phase_parse(folder: Path) -> dict[str, Any]:
    from retrievekit.ingest.documents import parse_document

    out: dict[str, Any] = {"pdf": {"files": 0, "pages": 0, "seconds": 0.0},
                           "docx": {"files": 0, "pages": 0, "seconds": 0.0}}
    texts = {}
    for path in sorted((folder / "files").iterdir()):
        data = path.read_bytes()
        started = time.perf_counter()
        (doc,) = parse_document(data, path)
        seconds = time.perf_counter() - started
        entry = out[doc.format]
        entry["files"] += 1
        entry["pages"] += len(doc.pages)
        entry["seconds"] += seconds
        if doc.format == "pdf":
            texts[path.name] = [doc.text[s:e] for s, e in doc.pages]
    (folder / "pdfium_pages.json").write_text(json.dumps(texts))
    return out


def phase_pdfminer(folder: Path) -> dict[str, Any]:
    from pdfminer.high_level import extract_text

    texts, pages, seconds = {}, 0, 0.0
    for path in sorted((folder / "files").glob("*.pdf")):
        data = path.read_bytes()
        started = time.perf_counter()
        text = extract_text(io.BytesIO(data))
        seconds += time.perf_counter() - started
        per_page = text.split("\f")
        if per_page and not per_page[-1].strip():
            per_page = per_page[:-1]
        texts[path.name] = per_page
        pages += len(per_page)
    (folder / "pdfminer_pages.json").write_text(json.dumps(texts))
    return {"files": len(texts), "pages": pages, "seconds": seconds}


def phase_ingest(folder: Path, passages: str | None, workers: int = 1) -> dict[str, Any]:
    from retrievekit import Collection

    target = folder / ("collection-passages" if passages else "collection")
    if target.exists():
        shutil.rmtree(target)
    col = Collection.create(target, passages=passages)
    started = time.perf_counter()
    report = col.ingest(folder / "files", progress=False, workers=workers)
    seconds = time.perf_counter() - started
    return {"documents": report["documents"], "stored": len(col), "skipped": len(report["skipped"]),
            "seconds": seconds, "passages": passages, "workers": workers}


def run_phase(name: str, folder: Path, extra: list[str] | None = None) -> dict[str, Any]:
    """One phase in a child process; its JSON result plus the child's peak RSS."""
    cmd = [sys.executable, __file__, "--phase", name, "--work", str(folder), *(extra or [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"phase {name} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# ----------------------------------------------------------------------------- quality


def word_f1(reference: str, candidate: str) -> float:
    a, b = Counter(WORDS.findall(reference.lower())), Counter(WORDS.findall(candidate.lower()))
    if not a and not b:
        return 1.0
    overlap = sum((a & b).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(b.values()), overlap / sum(a.values())
    return 2 * precision * recall / (precision + recall)


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"mean": round(sum(ordered) / len(ordered), 4), "p5": round(ordered[int(0.05 * (len(ordered) - 1))], 4),
            "min": round(ordered[0], 4), "pages": len(ordered), "pages_below_1": sum(v < 1.0 for v in ordered)}


def quality(folder: Path, truth: dict[str, list[str]]) -> dict[str, Any]:
    pdfium = json.loads((folder / "pdfium_pages.json").read_text())
    miner = json.loads((folder / "pdfminer_pages.json").read_text())
    f1_pdfium, f1_miner, agree, page_count_mismatch = [], [], [], 0
    for name, pages in truth.items():
        a, b = pdfium[name], miner[name]
        if len(a) != len(pages) or len(b) != len(pages):
            page_count_mismatch += 1
        for i, source in enumerate(pages):
            x = a[i] if i < len(a) else ""
            y = b[i] if i < len(b) else ""
            f1_pdfium.append(word_f1(source, x))
            f1_miner.append(word_f1(source, y))
            agree.append(word_f1(x, y))
    return {"pypdfium2_vs_source": summary(f1_pdfium), "pdfminer_vs_source": summary(f1_miner),
            "pypdfium2_vs_pdfminer": summary(agree), "files_with_page_count_mismatch": page_count_mismatch}


# ----------------------------------------------------------------------------- main


def peak_rss_mib() -> float:
    """This process's peak RSS. Linux keeps ``ru_maxrss`` across exec (a child would report its parent's peak when
    that was higher), so the address space's own high-water mark, VmHWM, is read where there is one."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pdfs", type=int, default=350)
    parser.add_argument("--docx", type=int, default=200)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--phase", choices=["parse", "pdfminer", "ingest", "ingest-passages", "ingest-workers"],
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        if args.phase == "parse":
            result = phase_parse(args.work)
        elif args.phase == "pdfminer":
            result = phase_pdfminer(args.work)
        elif args.phase == "ingest-workers":  # parse and analyse in 2 processes each
            result = phase_ingest(args.work, None, workers=2)
        else:
            result = phase_ingest(args.work, "sentences:128" if args.phase == "ingest-passages" else None)
        result["peak_rss_mib"] = peak_rss_mib()
        print(json.dumps(result))
        return 0

    load = os.getloadavg()
    started = time.perf_counter()
    corpus = build_corpus(args.work, args.pdfs, args.docx, args.seed)
    generate_seconds = time.perf_counter() - started
    print(f"corpus: {args.pdfs} PDFs ({corpus['pdf_pages']:,} pages), {args.docx} DOCX, "
          f"{corpus['bytes'] / 1e6:.1f} MB ({generate_seconds:.0f} s)", file=sys.stderr)
    parse = run_phase("parse", args.work)
    miner = run_phase("pdfminer", args.work)
    ingest = run_phase("ingest", args.work)
    passages = run_phase("ingest-passages", args.work)
    parallel = run_phase("ingest-workers", args.work)
    pdf_pages = parse["pdf"]["pages"]
    result = {
        "benchmark": "documents",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "machine": {"cpu": platform.machine(), "cpus": os.cpu_count(), "load_average": [round(x, 2) for x in load],
                    "load_average_end": [round(x, 2) for x in os.getloadavg()]},
        "corpus": {"pdfs": args.pdfs, "docx": args.docx, "seed": args.seed, "pdf_pages": corpus["pdf_pages"],
                   "docx_pages": parse["docx"]["pages"], "bytes": corpus["bytes"]},
        "parse": {
            "pypdfium2": {**parse["pdf"], "pages_per_s": round(parse["pdf"]["pages"] / parse["pdf"]["seconds"], 1),
                          "files_per_s": round(parse["pdf"]["files"] / parse["pdf"]["seconds"], 1)},
            "python-docx": {**parse["docx"], "files_per_s": round(parse["docx"]["files"] / parse["docx"]["seconds"],
                                                                  1)},
            "pdfminer.six": {**miner, "pages_per_s": round(miner["pages"] / miner["seconds"], 1),
                             "files_per_s": round(miner["files"] / miner["seconds"], 1)},
            "peak_rss_mib": {"pypdfium2+python-docx": parse["peak_rss_mib"], "pdfminer.six": miner["peak_rss_mib"]},
        },
        "ingest": {
            kind: {**r, "docs_per_s": round(r["documents"] / r["seconds"], 1),
                   "pdf_pages_per_s": round(pdf_pages / r["seconds"], 1)}
            for kind, r in (("documents", ingest), ("passages", passages), ("documents_2_workers", parallel))
        },
        "quality": quality(args.work, corpus["truth"]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(render(result))
    return 0


def render(result: dict[str, Any]) -> str:
    """The BENCHMARKS.md section of a result."""
    corpus, parse, ingest, q = result["corpus"], result["parse"], result["ingest"], result["quality"]
    pdfium, miner, docx = parse["pypdfium2"], parse["pdfminer.six"], parse["python-docx"]
    machine = result["machine"]
    lines = [
        "## Documents: PDF and Office ingestion (issue 19)",
        "",
        f"`python benchmarks/run_documents.py` ({result['date']}; {machine['cpus']} cores shared with other work, "
        f"load {machine['load_average'][0]} at the start, {machine.get('load_average_end', ['?'])[0]} at the end): "
        f"{corpus['pdfs']} generated PDFs ({corpus['pdf_pages']:,} pages: a "
        f"bookmarked heading, standard-library docstrings, a table on some pages) and {corpus['docx']} DOCX files "
        f"({corpus['bytes'] / 1e6:.1f} MB). Each phase runs in its own process (peak RSS is that process's).",
        "",
        "| phase | files | pages | seconds | pages/s | files/s | peak RSS MiB |",
        "|---|---|---|---|---|---|---|",
        f"| parse PDF, pypdfium2 (chosen) | {pdfium['files']} | {pdfium['pages']:,} | {pdfium['seconds']:.1f} | "
        f"{pdfium['pages_per_s']:,.0f} | {pdfium['files_per_s']:,.0f} | "
        f"{parse['peak_rss_mib']['pypdfium2+python-docx']:.0f} (with DOCX) |",
        f"| parse PDF, pdfminer.six | {miner['files']} | {miner['pages']:,} | {miner['seconds']:.1f} | "
        f"{miner['pages_per_s']:,.0f} | {miner['files_per_s']:,.1f} | {parse['peak_rss_mib']['pdfminer.six']:.0f} |",
        f"| parse DOCX, python-docx | {docx['files']} | — | {docx['seconds']:.1f} | — | {docx['files_per_s']:,.0f} | "
        "(above) |",
    ]
    for kind, label in (("documents", "ingest into BM25, one document per file"),
                        ("passages", "ingest into BM25 as passages (sentences:128, page by page)"),
                        ("documents_2_workers", "ingest into BM25, one document per file, workers=2 (parsing and "
                         "analysis; RSS of the main process)")):
        r = ingest.get(kind)
        if r is None:
            continue
        lines.append(f"| {label} | {r['documents']} | {corpus['pdf_pages']:,} (PDF) | {r['seconds']:.1f} | "
                     f"{r['pdf_pages_per_s']:,.0f} | "
                     f"{r['docs_per_s']:,.1f} | {r['peak_rss_mib']:.0f} |")
    lines += [
        "",
        "Extraction quality per PDF page: word-level F1 (lower-cased `\\w+` multisets) against the words written on "
        "the page, and between the two extractors:",
        "",
        "| comparison | mean F1 | 5th percentile | min | pages | pages with F1 < 1 |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in (("pypdfium2_vs_source", "pypdfium2 vs source text"),
                       ("pdfminer_vs_source", "pdfminer.six vs source text"),
                       ("pypdfium2_vs_pdfminer", "pypdfium2 vs pdfminer.six")):
        s = q[key]
        lines.append(f"| {label} | {s['mean']:.4f} | {s['p5']:.4f} | {s['min']:.4f} | {s['pages']:,} | "
                     f"{s.get('pages_below_1', '—')} |")
    lines += ["", f"Files whose page count differs between the extractors and the source: "
              f"{q['files_with_page_count_mismatch']}. The generated pages are clean single-column text, so both "
              "extractors are near perfect; where pypdfium2 differs, PDFium joined a word hyphenated at a line end "
              "with the next line's word (`by-`/`path` -> `bypath`). Real scans, multi-column layouts and odd "
              "fonts are not measured here.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
