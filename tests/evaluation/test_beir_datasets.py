"""BEIR dataset loading: local folders, and downloads served by a loopback HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import json
import sys
import threading
import zipfile
from pathlib import Path

import pytest
from paths import shared_data

from retrievekit.core.document import Document
from retrievekit.core.errors import CollectionError, InputFormatError
from retrievekit.evaluation import BeirDataset, DatasetError, load_beir
from retrievekit.evaluation import datasets as beir_datasets

CORPUS = [{"_id": "d1", "title": "Cats", "text": "Cats purr."},
          {"_id": "d2", "title": "", "text": "Dogs bark.", "metadata": {"lang": "en"}},
          {"_id": "d3", "text": "Birds sing."}]
QUERIES = [{"_id": "q1", "text": "purring animals"}, {"_id": "q2", "text": "barking"},
           {"_id": "q3", "text": "unjudged in test"}]


def write_beir_folder(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in CORPUS))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUERIES))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\n")
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq3\td3\t1\n")
    return folder


def make_zip(path: Path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return hashlib.md5(path.read_bytes()).hexdigest()


def folder_members(folder: Path, prefix: str) -> dict[str, bytes]:
    return {f"{prefix}/{p.relative_to(folder).as_posix()}": p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


class Server:
    """A loopback HTTP server over a folder that records the paths it was asked for."""

    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):  # keep test output quiet
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/datasets"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    (root / "datasets").mkdir(parents=True)
    srv = Server(root)
    srv.root = root / "datasets"  # type: ignore[attr-defined]
    yield srv
    srv.close()


@pytest.fixture
def toyset(tmp_path, server, monkeypatch):
    """A BEIR-layout zip named toyset.zip on the server, registered with its real md5."""
    folder = write_beir_folder(tmp_path / "src" / "toyset")
    md5 = make_zip(server.root / "toyset.zip", folder_members(folder, "toyset"))
    monkeypatch.setitem(beir_datasets.BEIR_MD5, "toyset", md5)
    return server


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


# ----------------------------------------------------------------------------- local folders


def test_load_local_folder(tmp_path):
    ds = load_beir(write_beir_folder(tmp_path / "toy"))
    assert isinstance(ds, BeirDataset) and ds.split == "test"
    assert ds.queries == {"q1": "purring animals", "q2": "barking"}  # only the split's judged queries
    assert ds.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    assert ds.corpus_path == tmp_path / "toy" / "corpus.jsonl"
    docs = list(ds.iter_corpus())
    assert [d.id for d in docs] == ["d1", "d2", "d3"]
    assert all(isinstance(d, Document) for d in docs)
    assert (docs[0].title, docs[0].text) == ("Cats", "Cats purr.")
    assert load_beir(tmp_path / "toy", split="train").queries == {"q3": "unjudged in test"}


def test_iter_corpus_fallback_without_ingest(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "retrievekit.ingest", None)  # makes the import fail
    docs = list(load_beir(write_beir_folder(tmp_path / "toy")).iter_corpus())
    assert docs == [Document("d1", "Cats purr.", "Cats"), Document("d2", "Dogs bark.", "", {"lang": "en"}),
                    Document("d3", "Birds sing.", "")]


def test_shared_scifact_folder():
    folder = shared_data("scifact", "corpus.jsonl").parent
    ds = load_beir(folder)
    assert len(ds.queries) == 300 and len(ds.qrels) == 300
    assert sum(len(d) for d in ds.qrels.values()) == 339
    assert sum(1 for _ in ds.iter_corpus()) == 5183
    assert len(load_beir(folder, split="train").queries) == 809


def test_folder_errors(tmp_path):
    folder = write_beir_folder(tmp_path / "toy")
    with pytest.raises(DatasetError, match=r"no split 'dev'.*\['test', 'train'\]"):
        load_beir(folder, split="dev")
    (folder / "queries.jsonl").unlink()
    with pytest.raises(CollectionError, match="queries.jsonl is missing"):
        load_beir(folder)
    with pytest.raises(DatasetError, match="no such dataset folder"):
        load_beir(tmp_path / "does" / "not" / "exist")


def test_bad_queries_line_is_located(tmp_path):
    folder = write_beir_folder(tmp_path / "toy")
    with open(folder / "queries.jsonl", "a") as f:
        f.write("{not json\n")
    with pytest.raises(InputFormatError, match=r"queries.jsonl:4: invalid JSON"):
        load_beir(folder)


def test_unknown_name_lists_known_ones(tmp_path):
    with pytest.raises(DatasetError, match=r"unknown BEIR dataset 'scifakt'.*known names:.*scifact"):
        load_beir("scifakt", cache_dir=tmp_path)


def test_registry_holds_the_published_checksums():
    assert beir_datasets.BEIR_MD5["scifact"] == "5f7d1de60b170fc8027bb7898e2efca1"
    assert beir_datasets.BEIR_MD5["nfcorpus"] == "a89dba18a62ef92f7d323ec890a0d38d"
    assert all(len(v) == 32 and int(v, 16) >= 0 for v in beir_datasets.BEIR_MD5.values())


# ----------------------------------------------------------------------------- downloads


def test_download_verify_extract_then_cache_hit(tmp_path, toyset):
    cache = tmp_path / "cache"
    ds = load_beir("toyset", cache_dir=cache, base_url=toyset.url)
    assert ds.path == cache / "toyset" and ds.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    assert [d.id for d in ds.iter_corpus()] == ["d1", "d2", "d3"]
    assert toyset.requests == ["/datasets/toyset.zip"]
    assert leftovers(cache) == ["toyset"]  # no zip, no temporary file or folder left behind
    again = load_beir("toyset", split="train", cache_dir=cache, base_url=toyset.url)
    assert again.queries == {"q3": "unjudged in test"}
    assert toyset.requests == ["/datasets/toyset.zip"]  # served from the cache


def test_environment_variables_choose_url_and_cache(tmp_path, toyset, monkeypatch):
    monkeypatch.setenv("RETRIEVEKIT_BEIR_URL", toyset.url + "/")
    monkeypatch.setenv("RETRIEVEKIT_CACHE", str(tmp_path / "rk"))
    ds = load_beir("toyset")
    assert ds.path == tmp_path / "rk" / "beir" / "toyset"
    assert len(toyset.requests) == 1


def test_checksum_mismatch_caches_nothing(tmp_path, toyset, monkeypatch):
    monkeypatch.setitem(beir_datasets.BEIR_MD5, "toyset", "0" * 32)
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match=r"checksum mismatch.*expected 0{32}"):
        load_beir("toyset", cache_dir=cache, base_url=toyset.url)
    assert leftovers(cache) == []


def test_http_error_is_reported(tmp_path, server, monkeypatch):
    monkeypatch.setitem(beir_datasets.BEIR_MD5, "absent", "0" * 32)
    with pytest.raises(DatasetError, match="could not download .*absent.zip.*404"):
        load_beir("absent", cache_dir=tmp_path / "cache", base_url=server.url)
    assert leftovers(tmp_path / "cache") == []


@pytest.mark.parametrize("evil", ["../evil.txt", "/abs/evil.txt", "toy/../../evil.txt"])
def test_path_traversal_in_zip_is_refused(tmp_path, server, monkeypatch, evil):
    members = {"toy/corpus.jsonl": b"", evil: b"owned"}
    monkeypatch.setitem(beir_datasets.BEIR_MD5, "toy", make_zip(server.root / "toy.zip", members))
    cache = tmp_path / "deep" / "cache"
    with pytest.raises(DatasetError, match="unsafe path"):
        load_beir("toy", cache_dir=cache, base_url=server.url)
    assert leftovers(cache) == []
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))


def test_multi_part_zip(tmp_path, server, monkeypatch):
    src = tmp_path / "src"
    members = {**folder_members(write_beir_folder(src / "a"), "multi/a"),
                **folder_members(write_beir_folder(src / "b"), "multi/b")}
    monkeypatch.setitem(beir_datasets.BEIR_MD5, "multi", make_zip(server.root / "multi.zip", members))
    cache = tmp_path / "cache"
    part = load_beir("multi/b", cache_dir=cache, base_url=server.url)
    assert part.path == cache / "multi" / "b" and len(part.queries) == 2
    with pytest.raises(DatasetError, match="several datasets.*parts: a, b"):
        load_beir("multi", cache_dir=cache, base_url=server.url)
    with pytest.raises(DatasetError, match="no part 'c'"):
        load_beir("multi/c", cache_dir=cache, base_url=server.url)
    assert len(server.requests) == 1
