"""The command line on sharded collections: ``index --shards N`` builds one from the sources plain ``index`` reads,
and ``search``, ``info``, ``ask``, ``eval`` and ``delete`` open a folder holding cluster.json as a sharded collection,
printing what they print for the same documents in one plain collection. Shards run in this process."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from toy_encoder import ToyEncoder  # noqa: F401  (registers the "toy" encoder backend)

from retrievekit.cli.main import main
from retrievekit.sharding import ShardedCollection, shard_of

WORDS = ("cats dogs birds fish python rust java code language memory garbage collector index search ranking "
         "query shard cluster network latency cache disk vector dense sparse token").split()


def corpus(n: int = 40, seed: int = 7) -> list[dict]:
    """Short documents over a small vocabulary (so BM25 scores tie often), with metadata on every document."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 12))]
        docs.append({"id": f"doc-{i:03d}", "title": " ".join(words[:2]), "text": " ".join(words),
                     "metadata": {"year": 2000 + i % 7, "kind": ("even", "odd")[i % 2]}})
    return docs


def write_jsonl(path: Path, docs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def without_timing(text: str) -> str:
    """Search output without its last line ("N queries in X ms"), which differs from run to run."""
    lines = text.rstrip("\n").splitlines()
    assert lines[-1].endswith(" ms"), lines[-1]
    return "\n".join(lines[:-1])


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, list[dict]]:
    """The same JSONL source indexed by the command line into a plain collection and over 3 shards (toy dense
    index on both)."""
    root = tmp_path_factory.mktemp("cli")
    docs = corpus()
    source = write_jsonl(root / "docs.jsonl", docs)
    plain, sharded = root / "plain", root / "sharded"
    assert main(["index", str(source), str(plain), "--dense", "toy:bow", "--no-progress"]) == 0
    assert main(["index", str(source), str(sharded), "--shards", "3", "--dense", "toy:bow", "--no-progress",
                 "--json"]) == 0
    return root, plain, sharded, docs


def test_index_shards_routes_every_document(pair, capsys) -> None:
    _, _, sharded, docs = pair
    with ShardedCollection(sharded) as col:
        assert col.shards == 3 and len(col) == len(docs)
        assert col.modes() == ["bm25", "dense", "hybrid"]
        counts = [s["documents"] for s in col.info()["shards"]]
    expected = [sum(shard_of(d["id"], 3) == s for d in docs) for s in range(3)]
    assert counts == expected and all(counts)  # every shard holds part of them, where the hash routes them


@pytest.mark.parametrize("extra", [[], ["--mode", "bm25"], ["--mode", "dense"], ["--mode", "hybrid", "--fusion", "rrf"],
                                   ["--filter", '{"year": {"gte": 2003}}'], ["--scorer", "robertson", "-k", "25"]])
def test_search_output_equals_the_plain_collections(pair, capsys, extra) -> None:
    _, plain, sharded, _ = pair
    queries = ["cats and dogs", "garbage collector memory", "shard cluster latency", "python"]
    code, want, err = run(capsys, "search", str(plain), *queries, *extra)
    assert code == 0, err
    code, got, err = run(capsys, "search", str(sharded), *queries, *extra)
    assert code == 0, err
    assert without_timing(got) == without_timing(want)
    assert want.count("\n  1. ") == len(queries)  # every query found something: the comparison is not of nothing


def test_search_json_equals_the_plain_collections(pair, capsys) -> None:
    _, plain, sharded, _ = pair
    args = ["cats dogs", "vector dense sparse", "-k", "15", "--json"]
    outputs = []
    for folder in (plain, sharded):
        code, out, err = run(capsys, "search", str(folder), *args)
        assert code == 0, err
        result = json.loads(out)
        del result["seconds"]
        outputs.append(result)
    want, got = outputs
    assert [[h["id"] for h in r["hits"]] for r in got["results"]] == [[h["id"] for h in r["hits"]]
                                                                      for r in want["results"]]
    for r_got, r_want in zip(got["results"], want["results"]):
        for h_got, h_want in zip(r_got["hits"], r_want["hits"]):
            assert h_got["score"] == pytest.approx(h_want["score"], abs=1e-6)
            assert {k: v for k, v in h_got.items() if k != "score"} == {k: v for k, v in h_want.items()
                                                                       if k != "score"}
    assert got["mode"] == want["mode"] == "hybrid"


def test_info_lists_the_shards(pair, capsys) -> None:
    _, _, sharded, docs = pair
    code, out, err = run(capsys, "info", str(sharded), "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["documents"] == len(docs) and len(info["shards"]) == 3
    assert sum(s["documents"] for s in info["shards"]) == len(docs)
    assert info["modes"] == ["bm25", "dense", "hybrid"]
    code, text, err = run(capsys, "info", str(sharded))
    assert code == 0, err
    assert "shards[2].documents" in text and "documents" in text


def test_ask_contexts_equal_the_plain_collections(pair, capsys) -> None:
    _, plain, sharded, _ = pair
    outputs = []
    for folder in (plain, sharded):
        code, out, err = run(capsys, "ask", str(folder), "what about cats and dogs", "--generator", "none", "--json")
        assert code == 0, err
        outputs.append([(c["doc_id"], c["text"], round(c["score"], 5)) for c in json.loads(out)["contexts"]])
    assert outputs[0] and outputs[1] == outputs[0]


def test_eval_on_an_existing_sharded_collection_equals_plain(tmp_path, capsys) -> None:
    docs = corpus(30, seed=3)
    data = tmp_path / "beir"
    (data / "qrels").mkdir(parents=True)
    write_jsonl(data / "corpus.jsonl", [{"_id": d["id"], "title": d["title"], "text": d["text"]} for d in docs])
    queries = {"q1": "cats dogs", "q2": "memory garbage collector", "q3": "vector search ranking"}
    (data / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()))
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tdoc-001\t1\nq1\tdoc-004\t1\n"
                                             "q2\tdoc-010\t1\nq3\tdoc-020\t2\nq3\tdoc-002\t1\n")
    sharded = tmp_path / "sharded"
    assert main(["index", str(data), str(sharded), "--shards", "3", "--no-progress"]) == 0
    capsys.readouterr()
    results = []
    for folder in (tmp_path / "plain", sharded):  # the plain one is indexed by eval itself
        code, out, err = run(capsys, "eval", str(data), "--collection", str(folder), "--json", "--no-progress")
        assert code == 0, err
        results.append(json.loads(out))
    plain_result, sharded_result = results
    assert sharded_result["index_reused"] is True and sharded_result["documents"] == len(docs)
    for metric in ("ndcg@10", "recall@100", "map"):
        assert sharded_result[metric] == pytest.approx(plain_result[metric], abs=1e-6)
    code, _, err = run(capsys, "eval", str(data), "--collection", str(sharded), "--system", "lucene+rm3")
    assert code == 2 and "RM3" in err and "sharded" in err


def test_reopening_adds_documents_and_a_mismatching_shard_count_is_an_error(tmp_path, capsys) -> None:
    docs = corpus(12)
    first = write_jsonl(tmp_path / "first.jsonl", docs[:8])
    second = write_jsonl(tmp_path / "second.jsonl", docs[8:])
    folder = tmp_path / "sharded"
    assert run(capsys, "index", str(first), str(folder), "--shards", "2", "--no-progress")[0] == 0
    code, out, err = run(capsys, "index", str(second), str(folder), "--shards", "3", "--no-progress")
    assert code == 2 and out == ""
    assert "sharded collection of 2 shards, not 3" in err and "--shards 2" in err
    code, out, err = run(capsys, "index", str(second), str(folder), "--shards", "2", "--no-progress", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["added"], summary["documents"], summary["shards"]) == (4, 12, 2)
    code, out, err = run(capsys, "index", str(first), str(folder), "--no-progress")  # --shards left out: adds too
    assert code == 0, err
    assert "now holds 12 documents in 2 shards" in out  # the same ids again: replaced, not duplicated
    code, _, err = run(capsys, "index", str(first), str(folder), "--fields", "text", "--no-progress")
    assert code == 2 and "indexes the fields title,text" in err
    code, out, err = run(capsys, "delete", str(folder), docs[0]["id"], docs[1]["id"])
    assert code == 0 and "deleted 2 document(s)" in out
    with ShardedCollection(folder) as col:
        assert len(col) == 10 and col.get(docs[0]["id"]) is None


def test_what_sharded_collections_cannot_do_is_a_clear_error(tmp_path, capsys) -> None:
    source = write_jsonl(tmp_path / "docs.jsonl", corpus(6))
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "a.py").write_text("def f():\n    return 1\n")
    target = tmp_path / "new"
    code, out, err = run(capsys, "index", str(tmp_path / "repo"), str(target), "--code", "--shards", "2")
    assert code == 2 and out == ""
    assert "--code" in err and "sharded collections do not support" in err and "leave out --shards" in err
    for flags, phrase in ((["--field-weights", "title=2,text=1"], "--field-weights"),
                          (["--workers", "2"], "--workers")):
        code, _, err = run(capsys, "index", str(source), str(target), "--shards", "2", *flags, "--no-progress")
        assert code == 2 and phrase in err and "shard" in err, err
    assert not target.exists()  # refused before anything was created

    plain = tmp_path / "plain"
    assert run(capsys, "index", str(source), str(plain), "--no-progress")[0] == 0
    code, _, err = run(capsys, "index", str(source), str(plain), "--shards", "2", "--no-progress")
    assert code == 2 and "is a plain collection" in err
    code, _, err = run(capsys, "search", str(plain), "cats", "--ray", "local")
    assert code == 2 and "--ray runs the shards of a sharded collection" in err

    sharded = tmp_path / "sharded"
    assert run(capsys, "index", str(source), str(sharded), "--shards", "2", "--no-progress")[0] == 0
    code, _, err = run(capsys, "index", str(tmp_path / "repo"), str(sharded), "--code")
    assert code == 2 and "is a sharded collection" in err and "--code" in err
    code, _, err = run(capsys, "optimize", str(sharded))
    assert code == 2 and "sharded collection" in err
    code, _, err = run(capsys, "search", str(sharded), "cats", "--rm3")
    assert code == 2 and "not supported on sharded collections" in err


def test_index_with_shards_builds_a_sparse_index_on_every_shard(tmp_path, capsys) -> None:
    pytest.importorskip("cognition")
    pytest.importorskip("torch")
    source = write_jsonl(tmp_path / "docs.jsonl", corpus(12))
    plain, sharded = tmp_path / "plain", tmp_path / "sharded"
    assert run(capsys, "index", str(source), str(plain), "--sparse", "--no-progress")[0] == 0
    assert run(capsys, "index", str(source), str(sharded), "--shards", "3", "--sparse", "--no-progress")[0] == 0
    outputs = [json.loads(run(capsys, "search", str(folder), "cats dogs", "--mode", "sparse", "-k", "5",
                              "--json")[1])["results"][0]["hits"] for folder in (plain, sharded)]
    assert [(h["id"], round(h["score"], 5)) for h in outputs[0]] == [(h["id"], round(h["score"], 5))
                                                                     for h in outputs[1]]
