"""The command line as a newcomer and a hostile document meet it: errors in CLI terms, arguments checked before any
work, true help texts, a readable info table, quiet --no-progress, full --json hits, no raw terminal escapes, and a
--lock-timeout for the writing commands."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from paths import FIXTURES

from retrievekit.cli import main as cli_main
from retrievekit.cli.errors import cli_message, command_parser
from retrievekit.cli.main import build_parser, main
from retrievekit.cli.render import print_json, terminal_safe
from retrievekit.collection import HYBRID_FUSION, Collection
from retrievekit.core.errors import RetrievekitError
from retrievekit.service.types import ServiceError
from retrievekit.storage.lock import WriterLock

PYTHONISMS = re.compile(r"\b[a-z_]+=(?!\w)|Collection\.|\w\(\.\.\.\)|\(path\)|exist_ok")
DOCS = [{"id": "d1", "title": "Zebrafish", "text": "The zebrafish is a small freshwater fish used in research.",
         "metadata": {"year": 2001}},
        {"id": "d2", "title": "Danio", "text": "Danio rerio is the zebrafish's scientific name."}]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def col(tmp_path: Path) -> Path:
    path = tmp_path / "col"
    Collection.create(path).add(DOCS)
    return path


def parser_of(command: str) -> argparse.ArgumentParser | None:
    return command_parser(build_parser(), command)


# -- errors speak the command line ------------------------------------------------------------------------------

def library_errors(tmp_path: Path, col: Path) -> list[tuple[str, Exception, str]]:
    """(command, the library's own error, what the CLI message must name) for every rewritten phrase."""
    from retrievekit.ingest import detect_format

    (tmp_path / "notes.unknown").write_text("x")
    out: list[tuple[str, Exception, str]] = []
    for command, action, expected in [
        ("index", lambda: detect_format(tmp_path / "notes.unknown"), "--format"),
        ("search", lambda: Collection(tmp_path / "missing"), "retrievekit index SOURCE COLLECTION"),
        ("search", lambda: Collection(col).index_config("dense"), "--dense MODEL"),
        ("search", lambda: Collection(col).index_config("sparse"), "--sparse"),
        ("index", lambda: Collection.create(tmp_path / "sem", passages="semantic"), "--dense"),
    ]:
        with pytest.raises(RetrievekitError) as info:
            action()
        out.append((command, info.value, expected))
    lock = WriterLock(col)
    try:
        for command, expected in (("delete", "--lock-timeout SECONDS"), ("search", "try again")):
            with pytest.raises(RetrievekitError) as info:
                WriterLock(col)
            out.append((command, info.value, expected))
    finally:
        lock.release()
    return out


def test_library_errors_are_rewritten_in_cli_terms(tmp_path: Path, col: Path) -> None:
    cases = library_errors(tmp_path, col)
    assert any(PYTHONISMS.search(str(exc)) for _, exc, _ in cases)  # the library does speak Python
    for command, exc, expected in cases:
        message = cli_message(exc, parser_of(command))
        assert expected in message and not PYTHONISMS.search(message), (str(exc), message)


def test_service_parameters_become_flags() -> None:
    exc = ServiceError("bad_request", "rerank_depth must be an integer from 1 to 11000, got 0", param="rerank_depth")
    assert cli_message(exc, parser_of("search")).startswith("--rerank-depth must be")
    exc = ServiceError("bad_request", "k must be an integer from 1 to 1000, got 0", param="k")
    assert cli_message(exc, parser_of("search")).startswith("-k must be")


def test_cli_errors_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.unknown").write_text("x")
    code, _, err = run(capsys, "index", str(tmp_path / "notes.unknown"), str(tmp_path / "c"), "--no-progress")
    assert code == 2 and "pass --format, one of: jsonl" in err and "format=" not in err
    code, _, err = run(capsys, "search", str(tmp_path / "nowhere"), "q")
    assert code == 2 and "`retrievekit index SOURCE COLLECTION`" in err and "Collection" not in err


# -- arguments are checked before any work ---------------------------------------------------------------------

def test_eval_rejects_a_bad_system_before_reading_the_dataset(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """The dataset does not even exist: the system is checked first, and the message lists every valid name."""
    for spec in ("bogus", "lucene:k1=abc", "lucene:zz=1", "hybrid:method=foo", "hybrid:k=5", "dense:x=1",
                 "dense+prf:x=1", "lucene+prf"):
        code, _, err = run(capsys, "eval", str(tmp_path / "no-dataset"), "--system", spec, "--no-progress")
        assert code == 2 and f"--system {spec!r}" in err and "no-dataset" not in err, err
    _, _, err = run(capsys, "eval", str(tmp_path / "no-dataset"), "--system", "bogus")
    for name in ("lucene", "bm25+", "dirichlet", "dense", "hybrid"):
        assert name in err
    for argv in (["--metrics", "ndcg@10,bogus"], ["--mu", "100"], ["--vectors", "int8"]):
        code, _, err = run(capsys, "eval", str(tmp_path / "no-dataset"), *argv)
        assert code == 2 and "no-dataset" not in err, err


def test_eval_system_options() -> None:
    from retrievekit.cli.evaluate import parse_dense_system

    assert parse_dense_system("hybrid") == ("hybrid", {"fusion": HYBRID_FUSION})
    # options without a method adjust the search default; with one, they replace it
    assert parse_dense_system("hybrid:w=0.3")[1]["fusion"] == {**HYBRID_FUSION, "weights": [0.3, 0.7]}
    assert parse_dense_system("hybrid:method=rrf,k=20")[1]["fusion"] == {"method": "rrf", "k": 20}
    assert parse_dense_system("dense+prf") == ("dense", {"prf": True})  # was {}: feedback silently off


@pytest.mark.parametrize("argv", [["-k", "0"], ["-k", "-3"], ["-k", "x"], ["--rerank-depth", "0"]])
def test_search_rejects_bad_numbers_before_opening(tmp_path: Path, argv: list[str],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["search", str(tmp_path / "missing"), "q", *argv])
    err = capsys.readouterr().err
    assert info.value.code == 2 and f"argument {argv[0]}" in err and "(no match)" not in err


def test_search_checks_filter_and_fusion_first(tmp_path: Path, col: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "search", str(tmp_path / "missing"), "q", "--filter", '{"year": {"bogus": 1}}')
    assert code == 2 and "--filter" in err and "missing" not in err
    code, _, err = run(capsys, "search", str(tmp_path / "missing"), "q", "--mode", "bm25", "--fusion", "rrf")
    assert code == 2 and "--fusion applies to --mode hybrid" in err
    code, _, err = run(capsys, "search", str(col), "q", "--fusion", "rrf")
    assert code == 2 and "no dense index" in err


def test_index_of_a_missing_source_draws_no_progress_bar(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "index", str(tmp_path / "nope.jsonl"), str(tmp_path / "c"))
    assert code == 2 and err.count("\n") == 1 and "nope.jsonl" in err and out == ""
    assert not (tmp_path / "c").exists()
    code, _, err = run(capsys, "index", str(tmp_path / "nope.jsonl"), str(tmp_path / "c"), "--vectors", "int8")
    assert code == 2 and "--dense" in err


# -- help texts are true -------------------------------------------------------------------------------------------

MY_COMMANDS = ("index", "search", "info", "delete", "optimize", "eval")


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def test_every_explicit_default_is_the_one_the_help_states() -> None:
    for command in MY_COMMANDS:
        parser = parser_of(command)
        assert parser is not None
        for action in parser._actions:
            default = action.default
            if default is None or isinstance(default, bool) or default == argparse.SUPPRESS or not action.help:
                continue
            assert _shown(default) in action.help, (command, action.option_strings, default, action.help)


def test_fusion_and_scoring_help_match_the_code() -> None:
    from retrievekit.retrieval.bm25.rm3 import RM3
    from retrievekit.retrieval.bm25.scoring import get_scorer

    search = parser_of("search")
    assert search is not None
    helps = {a.dest: " ".join((a.help or "").split()) for a in search._actions}
    assert "default rrf" not in helps["fusion"]
    assert HYBRID_FUSION == {"method": "convex", "weights": [0.2, 0.8], "normalization": "zscore"}
    assert "z-scored scores, 0.2 x BM25 + 0.8 x dense" in helps["fusion"]
    lucene, other = get_scorer("lucene").config(), get_scorer("robertson").config()
    assert f"default {lucene['k1']} for lucene, {other['k1']} for the others" in helps["k1"]
    assert f"default {lucene['b']} for lucene, {other['b']} for the others" in helps["b"]
    assert f"default {get_scorer('dirichlet').config()['mu']:g}" in helps["mu"]
    rm3 = RM3()
    assert (f"{rm3.fb_docs} feedback docs, {rm3.fb_terms} terms, original query weight {rm3.original_weight}"
            in helps["rm3"])
    for command in MY_COMMANDS:  # every help renders
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0


# -- info, progress ------------------------------------------------------------------------------------------------

def test_info_table_stays_narrow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    shutil.copytree(FIXTURES / "collection_v1" / "full", tmp_path / "full")
    code, out, _ = run(capsys, "info", str(tmp_path / "full"))
    assert code == 0 and max(len(line.rstrip()) for line in out.splitlines()) <= 110
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:] if line.strip()}
    assert rows["analyzer.name"] == ["lucene-english"] and rows["documents"] == ["58"]
    assert rows["terms_per_segment"] == ["1119,", "675,", "49"] and rows["passages"] == ["none"]
    assert rows["dense.default.model"] == ["sentence-transformers/all-MiniLM-L6-v2"]


def test_no_progress_silences_library_bars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(cli_main, "silence_library_progress", lambda: calls.append(True))
    run(capsys, "index", str(tmp_path / "nope.jsonl"), str(tmp_path / "c"), "--no-progress")
    assert calls == [True]
    run(capsys, "index", str(tmp_path / "nope.jsonl"), str(tmp_path / "c"))
    assert calls == [True]


@pytest.mark.parametrize("order", ["before", "after"])
def test_silence_works_whether_transformers_is_imported_before_or_after(order: str) -> None:
    pytest.importorskip("transformers")
    silence = "from retrievekit.core.progress import silence_library_progress; silence_library_progress()"
    load = "import transformers.utils.logging as tl, huggingface_hub.utils as hu"
    code = f"{silence}\n{load}" if order == "before" else f"{load}\n{silence}"
    code += "\nassert not tl.is_progress_bar_enabled() and hu.are_progress_bars_disabled()"
    env = {k: v for k, v in __import__("os").environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


# -- search --json, escapes ------------------------------------------------------------------------------------------

def test_search_json_has_title_and_snippet(col: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "search", str(col), "zebrafish research", "--json", "-k", "1")
    hit = json.loads(out)["results"][0]["hits"][0]
    assert code == 0 and hit["id"] == "d1" and hit["title"] == "Zebrafish" and hit["rank"] == 1
    assert "zebrafish is a small freshwater fish" in hit["snippet"] and hit["metadata"] == {"year": 2001}
    assert isinstance(hit["score"], float)


EVIL = {"id": "evil\x1b[2J", "title": "Evil \x1b]0;pwned\x07 title \x9b31m",
        "text": "red \x1b[31mzebra\x1b[0m fish \x9b2J\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ over\rwrite \x07bell"}


def test_terminal_safe() -> None:
    assert terminal_safe("a\x1b[1;31mb\x1b[0mc") == "abc"
    assert terminal_safe("t\x1b]0;title\x07u\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\") == "tulink"
    assert terminal_safe("x\x9b2Jy\x00z\x7f") == "xy\ufffdz\ufffd"
    assert terminal_safe("a\r\nb\rc\td") == "a\nb\nc\td"
    assert terminal_safe("a\nb\tc", newlines=False) == "a b c"
    assert terminal_safe("\x9d" * 10_000 + "x") == "\ufffd" * 10_000 + "x"  # unterminated: linear, kept visible


def test_search_and_ask_print_no_escape_sequences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "evil"
    Collection.create(path).add([EVIL])
    for argv in (["search", str(path), "red fish link"], ["ask", str(path), "red fish", "--generator", "none"]):
        code, out, _ = run(capsys, *argv)
        assert code == 0 and "red" in out and "link" in out
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", out), repr(out)
    code, out, _ = run(capsys, "search", str(path), "red", "--json")
    assert code == 0 and not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", out)
    assert json.loads(out)["results"][0]["hits"][0]["title"] == EVIL["title"]  # JSON keeps the text, escaped


def test_print_json_escapes_c1_controls(capsys: pytest.CaptureFixture[str]) -> None:
    print_json({"t": "a\x9bb\x7fc\u2028é"})
    out = capsys.readouterr().out
    assert "\\u009b" in out and "\\u007f" in out and "é" in out and json.loads(out) == {"t": "a\x9bb\x7fc\u2028é"}


# -- --lock-timeout ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["delete", "optimize", "index"])
def test_lock_timeout_option(command: str, col: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "more.jsonl"
    source.write_text('{"id": "d3", "text": "more zebrafish"}\n')
    extra = {"delete": [str(col), "d1"], "optimize": [str(col)],
             "index": [str(source), str(col), "--no-progress"]}[command]
    lock = WriterLock(col)
    try:
        code, _, err = run(capsys, command, *extra)
    finally:
        lock.release()
    assert code == 2 and "pass --lock-timeout SECONDS" in err and "lock timeout" not in err
    lock = WriterLock(col)
    timer = threading.Timer(0.3, lock.release)  # the other writer finishes while this command waits
    timer.start()
    try:
        code, _, err = run(capsys, command, *extra, "--lock-timeout", "30")
    finally:
        timer.join()
        lock.release()
    assert code == 0, err


def test_long_values_wrap_over_rows() -> None:
    from retrievekit.cli.render import wrapped_rows

    rows = wrapped_rows([("path", "folder/" * 30), ("note", "word " * 40), ("n", 5)], width=40)
    assert all(len(str(v)) <= 40 for _, v in rows) and rows[-1] == ("n", 5)
    assert [k for k, _ in rows].count("note") == 1 and rows[1][0] == ""
