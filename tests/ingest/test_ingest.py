"""Tests of the document readers in retrievekit.ingest."""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import pytest
from paths import shared_data

from retrievekit.core.document import Document
from retrievekit.core.errors import InputFormatError, RetrievekitError
from retrievekit.ingest import (
    SourceNotFoundError,
    detect_format,
    estimate_size,
    read_beir,
    read_delimited,
    read_documents,
    read_files,
    read_jsonl,
)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------- JSONL


def test_jsonl_fields_and_metadata(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", [
        json.dumps({"_id": "a", "title": "T", "text": "hello", "lang": "en", "tags": ["x", 1]}),
        "",
        "   ",
        json.dumps({"id": 7, "contents": "seven"}),
        json.dumps({"docid": "d", "body": "bod", "metadata": {"k": 1}, "other": None}),
    ])
    docs = list(read_jsonl(path))
    assert docs == [
        Document(id="a", text="hello", title="T", metadata={"lang": "en", "tags": ["x", 1]}),
        Document(id="7", text="seven"),
        Document(id="d", text="bod", metadata={"k": 1, "other": None}),
    ]


def test_jsonl_round_trips_document_to_json(tmp_path: Path) -> None:
    docs = [Document(id="x", text="t\u00e9xt", title="ti", metadata={"n": 1.5, "s": "v"}),
            Document(id="y")]
    path = write_lines(tmp_path / "c.jsonl", [json.dumps(d.to_json(), ensure_ascii=False) for d in docs])
    assert list(read_documents(path)) == docs


def test_jsonl_explicit_fields(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", [json.dumps({"pid": "p1", "id": "ignored", "passage": "p"})])
    (doc,) = read_jsonl(path, id_field="pid", text_field="passage")
    assert doc == Document(id="p1", text="p", metadata={"id": "ignored"})


def test_jsonl_empty_document_is_yielded(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", [json.dumps({"_id": "e"}), json.dumps({"_id": "f", "text": ""})])
    assert [d.id for d in read_jsonl(path)] == ["e", "f"]
    assert all(d.text == "" and d.title == "" for d in read_jsonl(path))


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ('{"_id": "a", "text": ', "malformed JSON"),
        ('["a", "b"]', "expected a JSON object"),
        ('{"text": "no id"}', "no id field"),
        ('{"_id": "", "text": "x"}', "empty"),
        ('{"_id": "  ", "text": "x"}', "empty"),
        ('{"_id": 1.5, "text": "x"}', "string or an integer"),
        ('{"_id": true, "text": "x"}', "string or an integer"),
        ('{"_id": null, "text": "x"}', "string or an integer"),
        ('{"_id": "a", "text": ["x"]}', "must be a string"),
        ('{"_id": "a", "title": true}', "must be a string"),
    ],
)
def test_jsonl_bad_lines_name_file_and_line(tmp_path: Path, line: str, fragment: str) -> None:
    path = write_lines(tmp_path / "bad.jsonl", [json.dumps({"_id": "ok"}), "", line])
    with pytest.raises(InputFormatError) as info:
        list(read_jsonl(path))
    assert info.value.path == str(path)
    assert info.value.line == 3
    assert fragment in str(info.value)
    assert f"{path}:3" in str(info.value)


def test_jsonl_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [
        json.dumps({"_id": "a"}), json.dumps({"_id": 5}), json.dumps({"_id": "b"}), json.dumps({"_id": "5"}),
    ])
    with pytest.raises(InputFormatError) as info:
        list(read_jsonl(path))
    assert info.value.line == 4
    assert "'5'" in str(info.value) and "line 2" in str(info.value)


def test_jsonl_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "u.jsonl"
    path.write_bytes(b'{"_id": "a", "text": "ok"}\n{"_id": "b", "text": "caf\xe9"}\n')
    with pytest.raises(InputFormatError) as info:
        list(read_jsonl(path))
    assert info.value.line == 2 and "UTF-8" in str(info.value)
    docs = list(read_jsonl(path, encoding_errors="replace"))
    assert docs[1].text == "caf\ufffd"
    with pytest.raises(InputFormatError, match="encoding_errors"):
        read_jsonl(path, encoding_errors="ignore")


def test_jsonl_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"_id": "a", "text": "x"}\r\n{"_id": "b"}\r\n')
    assert [d.id for d in read_jsonl(path)] == ["a", "b"]


def test_jsonl_gzip_and_progress(tmp_path: Path) -> None:
    lines = [json.dumps({"_id": str(i), "text": f"doc {i} " * 50}) for i in range(2000)]
    path = tmp_path / "c.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    assert detect_format(path) == "jsonl"
    seen: list[int] = []
    docs = list(read_documents(path, on_bytes=seen.append))
    assert len(docs) == 2000 and docs[-1].id == "1999"
    # progress counts compressed bytes, so it adds up to the size on disk
    assert sum(seen) == path.stat().st_size == estimate_size(path)


def test_jsonl_progress_plain(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.ndjson", [json.dumps({"_id": str(i)}) for i in range(10)] + [""])
    seen: list[int] = []
    assert len(list(read_documents(path, on_bytes=seen.append))) == 10
    assert sum(seen) == path.stat().st_size == estimate_size(path)


def test_jsonl_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(b"this is not gzip data at all\n")
    with pytest.raises(InputFormatError, match="cannot read"):
        list(read_jsonl(path))


def test_jsonl_50mb_line_is_linear(tmp_path: Path) -> None:
    big = "w" * (50 * 1024 * 1024)
    path = tmp_path / "big.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps({"_id": "small", "text": "x"}) + "\n")
        handle.write('{"_id": "big", "text": "' + big + '"}\n')
        handle.write(json.dumps({"_id": "after", "text": "y"}) + "\n")
    start = time.perf_counter()
    docs = list(read_jsonl(path))
    elapsed = time.perf_counter() - start
    assert [d.id for d in docs] == ["small", "big", "after"]
    assert len(docs[1].text) == len(big)
    assert elapsed < 10, f"reading a 50 MB line took {elapsed:.1f} s"


# ------------------------------------------------------------------------------------------------ BEIR


def test_beir_folder(tmp_path: Path) -> None:
    write_lines(tmp_path / "corpus.jsonl", [
        json.dumps({"_id": "1", "title": "t", "text": "x", "metadata": {"url": "u"}, "year": 2020}),
        json.dumps({"_id": "2", "title": "", "text": "y", "id": "kept-as-metadata"}),
    ])
    write_lines(tmp_path / "queries.jsonl", [json.dumps({"_id": "q", "text": "z"})])
    assert detect_format(tmp_path) == "beir"
    docs = list(read_documents(tmp_path))
    assert docs == [Document(id="1", text="x", title="t", metadata={"url": "u", "year": 2020}),
                    Document(id="2", text="y", metadata={"id": "kept-as-metadata"})]
    assert list(read_beir(tmp_path / "corpus.jsonl")) == docs
    assert estimate_size(tmp_path) == (tmp_path / "corpus.jsonl").stat().st_size


def test_beir_forced_on_folder_without_corpus(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="corpus.jsonl"):
        read_documents(tmp_path, format="beir")


def test_beir_scifact() -> None:
    docs = list(read_documents(shared_data("scifact", "corpus.jsonl").parent))
    assert len(docs) == 5183
    assert len({d.id for d in docs}) == 5183
    assert docs[0].id == "4983" and docs[0].title.startswith("Microstructural development")


# --------------------------------------------------------------------------------------------- CSV/TSV


def test_csv_basic(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text('id,title,text,year\n1,First,"hello, ""world""\nsecond line",2001\n\n2,,plain,\n',
                    encoding="utf-8")
    docs = list(read_documents(path))
    assert docs == [
        Document(id="1", title="First", text='hello, "world"\nsecond line', metadata={"year": 2001}),
        Document(id="2", text="plain", metadata={}),  # a numeric column: typed, empty cells left out
    ]


def test_tsv_basic_and_quoting_none(tmp_path: Path) -> None:
    path = tmp_path / "c.tsv"
    path.write_text('_id\ttext\n1\tsays "hi" here\n2\t"quoted" start\n', encoding="utf-8")
    with pytest.raises(InputFormatError) as info:
        list(read_documents(path))
    assert info.value.line == 3
    docs = list(read_documents(path, quoting="none"))
    assert [d.text for d in docs] == ['says "hi" here', '"quoted" start']


def test_tsv_forced_format_and_explicit_fields(tmp_path: Path) -> None:
    path = tmp_path / "collection.txt"
    path.write_text("pid\tpassage\tsrc\np1\tsome text\tweb\n", encoding="utf-8")
    (doc,) = read_documents(path, format="tsv", id_field="pid", text_field="passage")
    assert doc == Document(id="p1", text="some text", metadata={"src": "web"})


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        ("", None, "header row"),
        ("\n\n", None, "header row"),
        ("title,text\nT,x\n", 1, "id column"),
        ("id,text,id\n1,x,2\n", 1, "repeats"),
        ("id,,text\n1,a,b\n", 1, "empty column name"),
        ("id,text\n1,x\n2,x,extra\n", 3, "expected 2 fields"),
        ("id,text\n1,x\n2\n", 3, "expected 2 fields"),
        ("id,text\n1,x\n,empty id\n", 3, "empty"),
        ("id,text\na,x\nb,y\na,z\n", 4, "line 2"),
        ('id,text\n1,"unterminated\n', 2, "malformed CSV"),
        ('id,text\n1,"unterminated\nmore\n', 3, "starting on line 2"),
        ('id,text\n1,"a"b\n', 2, "malformed CSV"),
    ],
)
def test_csv_errors(tmp_path: Path, content: str, line: int | None, fragment: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputFormatError) as info:
        list(read_documents(path))
    assert info.value.path == str(path)
    assert info.value.line == line
    assert fragment in str(info.value)


def test_csv_invalid_utf8_and_replace(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_bytes(b"id,text\n1,ok\n2,bad \xff byte\n")
    with pytest.raises(InputFormatError) as info:
        list(read_delimited(path))
    assert info.value.line == 3
    assert list(read_delimited(path, encoding_errors="replace"))[1].text == "bad \ufffd byte"


def test_csv_huge_field(tmp_path: Path) -> None:
    big = "z" * (3 * 1024 * 1024)  # far above csv's default 128 KiB field limit
    path = tmp_path / "big.csv"
    path.write_text(f'id,text\n1,"{big}"\n2,small\n', encoding="utf-8")
    docs = list(read_delimited(path))
    assert len(docs[0].text) == len(big) and docs[1].text == "small"


def test_csv_gzip(tmp_path: Path) -> None:
    path = tmp_path / "c.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("id\ttext\n1\tone\n")
    assert detect_format(path) == "tsv"
    assert list(read_documents(path)) == [Document(id="1", text="one")]


# ----------------------------------------------------------------------------------------------- files


def make_tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / ".hidden" / "secret.txt").write_text("hidden")
    (root / ".dotfile.md").write_text("# hidden")
    (root / "b.txt").write_text("plain text\n")
    (root / "a.md").write_text("intro\n```\n# not a title\n```\n# The Title #\n\nbody\n")
    (root / "sub" / "page.html").write_text(
        "<html><head><title> My  Page </title><style>p {color: red}</style></head>"
        "<body><h1>Head</h1><p>Hello &amp; <b>bye</b></p><script>var x = 1;</script>"
        "<ul><li>one</li><li>two</li></ul></body></html>"
    )
    (root / "sub" / "deeper" / "notes.rst").write_text("=====\nNotes\n=====\n\ntext\n")
    (root / "sub" / "ignored.py").write_text("print()")
    (root / "Z.MD").write_text("no heading")


def test_files_reader(tmp_path: Path) -> None:
    make_tree(tmp_path)
    assert detect_format(tmp_path) == "files"
    docs = {d.id: d for d in read_documents(tmp_path)}
    assert list(docs) == ["Z.MD", "a.md", "b.txt", "sub/deeper/notes.rst", "sub/page.html"]
    assert docs["a.md"].title == "The Title"
    assert docs["a.md"].text.startswith("intro\n")
    assert docs["b.txt"].title == "b" and docs["b.txt"].text == "plain text\n"
    assert docs["Z.MD"].title == "Z"
    assert docs["Z.MD"].metadata == {"path": "Z.MD", "extension": ".md", "bytes": 10}
    assert docs["sub/deeper/notes.rst"].title == "Notes"
    page = docs["sub/page.html"]
    assert page.title == "My Page"
    assert [line for line in page.text.splitlines() if line] == ["Head", "Hello & bye", "one", "two"]
    assert "\n\n\n" not in page.text
    assert "color" not in page.text and "var x" not in page.text
    assert page.metadata["bytes"] == (tmp_path / "sub" / "page.html").stat().st_size
    assert estimate_size(tmp_path) == sum(d.metadata["bytes"] for d in docs.values())


def test_files_progress_and_extensions(tmp_path: Path) -> None:
    make_tree(tmp_path)
    seen: list[int] = []
    docs = list(read_files(tmp_path, extensions=["py", ".TXT"], on_bytes=seen.append))
    assert [d.id for d in docs] == ["b.txt", "sub/ignored.py"]
    assert sum(seen) == sum(d.metadata["bytes"] for d in docs)


def test_files_deterministic(tmp_path: Path) -> None:
    make_tree(tmp_path)
    assert list(read_files(tmp_path)) == list(read_files(tmp_path))


def test_files_invalid_utf8(tmp_path: Path) -> None:
    (tmp_path / "ok.txt").write_text("fine")
    (tmp_path / "bad.txt").write_bytes(b"line one\nline \xc3\x28 two\n")
    with pytest.raises(InputFormatError) as info:
        list(read_files(tmp_path))
    assert info.value.path is not None and info.value.path.endswith("bad.txt") and info.value.line == 2
    docs = list(read_files(tmp_path, encoding_errors="replace"))
    assert docs[0].id == "bad.txt" and "\ufffd" in docs[0].text


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_files_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "leak.txt").write_text("secret")
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "real" / "doc.txt").write_text("inside")
    try:
        (root / "out_file.txt").symlink_to(outside / "leak.txt")
        (root / "out_dir").symlink_to(outside, target_is_directory=True)
        (root / "in_file.txt").symlink_to(root / "real" / "doc.txt")
        (root / "real" / "loop").symlink_to(root, target_is_directory=True)
    except OSError:
        pytest.skip("cannot create symlinks here")
    ids = [d.id for d in read_files(root)]
    assert ids == ["in_file.txt", "real/doc.txt"]


def test_files_on_a_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("x")
    with pytest.raises(InputFormatError, match="folder"):
        read_documents(path, format="files")


# ------------------------------------------------------------------------------------------- dispatch


def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(SourceNotFoundError) as info:
        read_documents(missing)
    assert str(missing) in str(info.value)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, RetrievekitError)
    with pytest.raises(FileNotFoundError):
        read_jsonl(missing)  # eager: raised at call time, not on first next()
    assert estimate_size(missing) is None


def test_unknown_format_lists_valid_ones(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", [json.dumps({"_id": "a"})])
    with pytest.raises(InputFormatError) as info:
        read_documents(path, format="xml")
    for name in ("jsonl", "beir", "csv", "tsv", "files"):
        assert name in str(info.value)


def test_undetectable_file_name(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"")
    with pytest.raises(InputFormatError, match="format="):
        read_documents(path)


def test_unknown_option_fails_at_call_time(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", [json.dumps({"_id": "a"})])
    with pytest.raises(TypeError, match="jsonl"):
        read_documents(path, extensions=[".txt"])


def test_forced_jsonl_on_folder(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="folder"):
        read_documents(tmp_path, format="jsonl")


def test_readers_stream_lazily(tmp_path: Path) -> None:
    # A bad line far down the file must not stop the first documents from being yielded.
    path = write_lines(tmp_path / "c.jsonl", [json.dumps({"_id": "a"}), "not json"])
    docs = read_documents(path)
    assert next(docs).id == "a"
    with pytest.raises(InputFormatError):
        next(docs)
