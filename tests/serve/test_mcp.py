"""The stdio MCP server, run as a subprocess (``python -m retrievekit.serve.mcp PATH``) and driven over its wire
protocol: raw JSON-RPC lines (what any MCP client sends) and the SDK's own stdio client."""

from __future__ import annotations

import argparse
import json
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from retrievekit.collection import Collection
from retrievekit.core.errors import CollectionError, RetrievekitError
from retrievekit.serve.mcp import CollectionTools, add_mcp, main

DOCS = [
    {"id": "bees", "title": "Honey bees", "text": "Honey bees build hives of wax and make honey from nectar.",
     "metadata": {"year": 2021, "topic": "biology"}},
    {"id": "cars", "title": "Electric cars", "text": "Electric cars store energy in lithium batteries.",
     "metadata": {"year": 2015, "topic": "engineering"}},
    {"id": "wasps", "title": "Wasps", "text": "Wasps build paper nests; unlike bees they make no honey.",
     "metadata": {"year": 2010, "topic": "biology"}},
]
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mcp") / "col"
    Collection.create(path).add(DOCS)
    return path


class RawClient:
    """Speaks newline-delimited JSON-RPC 2.0 to a server subprocess; every stdout line must be a JSON message."""

    def __init__(self, args: list[str], stderr_path: Path) -> None:
        self._stderr = stderr_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr)
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.stray: list[bytes] = []
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": self._next_id, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        while True:
            line = self.lines.get(timeout=TIMEOUT)
            try:
                reply = json.loads(line)
            except json.JSONDecodeError:
                self.stray.append(line)
                continue
            if reply.get("id") == self._next_id:
                assert reply["jsonrpc"] == "2.0"
                return reply  # type: ignore[no-any-return]

    def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        reply = self.request("tools/call", {"name": tool, "arguments": arguments})
        assert "result" in reply, reply
        return reply["result"]  # type: ignore[no-any-return]

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # EOF ends the session
        try:
            return self.proc.wait(timeout=TIMEOUT)
        finally:
            self._stderr.close()


@pytest.fixture(scope="module")
def server(collection: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    client = RawClient(["-m", "retrievekit.serve.mcp", str(collection)],
                       tmp_path_factory.mktemp("mcp-log") / "stderr.txt")
    reply = client.request("initialize", {"protocolVersion": "2024-11-05", "capabilities": {},
                                          "clientInfo": {"name": "pytest", "version": "0"}})
    assert reply["result"]["serverInfo"]["name"] == "retrievekit"
    client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    yield client
    assert client.close() == 0
    assert client.stray == [], "non-protocol output on stdout"


def _error_text(result: dict[str, Any]) -> str:
    assert result["isError"] is True, result
    return " ".join(c["text"] for c in result["content"] if c["type"] == "text")


def test_tools_are_listed_with_schemas(server: RawClient) -> None:
    tools = {t["name"]: t for t in server.request("tools/list")["result"]["tools"]}
    assert set(tools) == {"search", "search_code", "search_images", "get_document", "collection_info"}
    assert set(tools["search_code"]["inputSchema"]["properties"]) == {"query", "k", "mode", "language", "kind",
                                                                      "path_prefix"}
    assert set(tools["search_images"]["inputSchema"]["properties"]) == {"image_path", "k", "text", "weight"}
    props = tools["search"]["inputSchema"]["properties"]
    assert set(props) == {"query", "k", "mode", "filter"}
    assert tools["search"]["inputSchema"]["required"] == ["query"]
    assert tools["get_document"]["inputSchema"]["required"] == ["id"]


def test_search_ranks_the_matching_document_first(server: RawClient) -> None:
    result = server.call("search", {"query": "honey from nectar", "k": 2})
    assert result["isError"] is False
    hits = result["structuredContent"]["hits"]
    assert [h["id"] for h in hits] == ["bees", "wasps"]
    assert [h["rank"] for h in hits] == [1, 2]
    assert hits[0]["score"] > hits[1]["score"]
    assert hits[0]["title"] == "Honey bees" and "nectar" in hits[0]["snippet"]
    # The text content carries the same JSON for clients that ignore structured content.
    assert json.loads(result["content"][0]["text"])["hits"][0]["id"] == "bees"


def test_search_filter(server: RawClient) -> None:
    result = server.call("search", {"query": "honey", "filter": {"year": {"gte": 2015}}})
    assert [h["id"] for h in result["structuredContent"]["hits"]] == ["bees"]


def test_get_document_and_missing_id(server: RawClient) -> None:
    doc = server.call("get_document", {"id": "cars"})["structuredContent"]
    assert doc == DOCS[1]
    text = _error_text(server.call("get_document", {"id": "no-such-doc"}))
    assert "no-such-doc" in text and "no document" in text
    # the server is still serving after the error
    assert server.call("collection_info", {})["structuredContent"]["collection"]["documents"] == 3


@pytest.mark.parametrize("arguments, expect", [
    ({"query": "honey", "k": 0}, "k"),
    ({"query": "honey", "k": "many"}, "k"),
    ({"k": 3}, "query"),
    ({"query": ""}, "query"),
    ({"query": "honey", "mode": "fuzzy"}, "mode"),
    ({"query": "honey", "mode": "dense"}, "not available"),
    ({"query": "honey", "filter": {"year": {"bogus": 1}}}, "bogus"),
    ({"query": "honey", "filter": "year>2000"}, "filter"),
])
def test_bad_arguments_give_error_results(server: RawClient, arguments: dict[str, Any], expect: str) -> None:
    assert expect in _error_text(server.call("search", arguments))


def test_unknown_tool_is_an_error(server: RawClient) -> None:
    reply = server.request("tools/call", {"name": "drop_everything", "arguments": {}})
    error = reply.get("error") or {}
    text = error.get("message", "") if error else _error_text(reply["result"])
    assert "drop_everything" in text


def test_sees_documents_committed_while_serving(server: RawClient, collection: Path) -> None:
    Collection(collection).add([{"id": "moths", "title": "Moths", "text": "Moths fly at night toward lamps."}])
    try:
        hits = server.call("search", {"query": "moths at night"})["structuredContent"]["hits"]
        assert hits[0]["id"] == "moths"
    finally:
        Collection(collection).delete(["moths"])
    assert server.call("search", {"query": "moths at night"})["structuredContent"]["hits"] == []


def test_sdk_stdio_client(collection: Path) -> None:
    import anyio
    from mcp import ClientSession, StdioServerParameters, stdio_client

    async def session_run() -> tuple[set[str], Any, Any]:
        params = StdioServerParameters(command=sys.executable,
                                       args=["-m", "retrievekit.serve.mcp", str(collection), "--mode", "bm25"])
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            names = {t.name for t in (await session.list_tools()).tools}
            found = await session.call_tool("search", {"query": "lithium batteries", "k": 1})
            missing = await session.call_tool("get_document", {"id": "absent"})
            return names, found, missing

    names, found, missing = anyio.run(session_run)
    assert names == {"search", "search_code", "search_images", "get_document", "collection_info"}
    assert not _is_error(found) and found.structured_content["hits"][0]["id"] == "cars"
    assert _is_error(missing)


def _is_error(result: Any) -> bool:
    return bool(getattr(result, "is_error", getattr(result, "isError", False)))


def test_unavailable_default_mode_is_refused(collection: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(CollectionError, match="dense"):
        CollectionTools(collection, mode="dense")
    assert main([str(collection), "--mode", "hybrid"]) == 2
    assert "not available" in capsys.readouterr().err
    assert main([str(collection.parent / "missing")]) == 2
    assert "no collection" in capsys.readouterr().err


def test_add_mcp_registers_subcommand() -> None:
    parser = argparse.ArgumentParser()
    add_mcp(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["mcp", "some/path", "--mode", "hybrid"])
    assert (args.collection, args.mode, callable(args.func)) == ("some/path", "hybrid", True)
    with pytest.raises(SystemExit):
        parser.parse_args(["mcp", "p", "--mode", "fuzzy"])


# -- search_code ------------------------------------------------------------------------------------------------
RETRY_PY = '''"""Retry helpers."""
import time


def backoff(attempt):
    """Delay in seconds before the next attempt: exponential backoff."""
    return 0.5 * 2 ** attempt


class RetryPolicy:
    """How often to retry a failed request."""

    def should_retry(self, attempt):
        # give up once the attempt limit is reached
        return attempt < 5
'''
SERVER_GO = '''package server

// Retry the request with backoff until the attempt limit.
func Retry(attempt int) bool {
\treturn attempt < 5
}
'''
# a long function whose matching lines are at its end: the snippet must show those lines, not the first ones
LONG_PY = "def long_task():\n" + "".join(f"    step_{i} = {i}\n" for i in range(30)) + \
    "    # finally the attempt limit and backoff\n    return step_0\n"


@pytest.fixture(scope="module")
def code_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("code") / "repo"
    for path, text in {"src/app/retry.py": RETRY_PY, "src/app/server.go": SERVER_GO,
                       "srcgen/tasks.py": LONG_PY}.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


@pytest.fixture(scope="module")
def code_collection(code_repo: Path) -> Path:
    pytest.importorskip("tree_sitter", reason="needs retrievekit[code]")
    col = Collection.create(code_repo.parent / "col", analyzer="code")
    col.ingest_code(code_repo, use_git=False)
    return col.path


def _file_lines(root: Path, path: str, first: int, last: int) -> str:
    return "\n".join((root / path).read_text().splitlines()[first - 1:last])


def test_search_code_over_the_wire(code_collection: Path, code_repo: Path, tmp_path: Path) -> None:
    client = RawClient(["-m", "retrievekit.serve.mcp", str(code_collection)], tmp_path / "stderr.txt")
    try:
        client.request("initialize", {"protocolVersion": "2024-11-05", "capabilities": {},
                                      "clientInfo": {"name": "pytest", "version": "0"}})
        client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        result = client.call("search_code", {"query": "when to give up retrying: attempt limit", "k": 3})
        assert result["isError"] is False
        hits = result["structuredContent"]["hits"]
        top = hits[0]
        assert {k: top[k] for k in ("path", "start_line", "end_line", "ref", "symbol", "qualname", "kind",
                                    "language", "signature")} == {
            "path": "src/app/retry.py", "start_line": 13, "end_line": 15, "ref": "src/app/retry.py:13-15",
            "symbol": "should_retry", "qualname": "RetryPolicy.should_retry", "kind": "method",
            "language": "python", "signature": "def should_retry(self, attempt)"}
        scores = [h["score"] for h in hits]
        assert scores == sorted(scores, reverse=True) and scores[0] > 0
        for hit in hits:  # every hit's lines and snippet are the file's own lines
            n = hit["snippet"].count("\n")
            assert hit["snippet"] == _file_lines(code_repo, hit["path"], hit["snippet_start_line"],
                                                 hit["snippet_start_line"] + n)
            assert hit["start_line"] <= hit["snippet_start_line"] <= hit["snippet_start_line"] + n <= hit["end_line"]
        go = client.call("search_code", {"query": "retry attempt", "language": "go"})["structuredContent"]["hits"]
        assert [h["ref"] for h in go] == ["src/app/server.go:3-6"]
        assert "pyhton" in _error_text(client.call("search_code", {"query": "retry", "language": "pyhton"}))
        assert client.call("search_code", {"query": "retry", "kind": 3})["isError"] is True
    finally:
        assert client.close() == 0
    assert client.stray == []


def test_search_code_filters_by_kind_and_path_prefix(code_collection: Path) -> None:
    tools = CollectionTools(code_collection)

    def refs(**arguments: Any) -> list[str]:
        return [h["ref"] for h in tools.search_code("attempt limit backoff", **arguments)["hits"]]

    everything = refs()
    assert {r.split(":")[0] for r in everything} == {"src/app/retry.py", "src/app/server.go", "srcgen/tasks.py"}
    assert refs(kind="function") and all(tools.col.get(h["id"]).metadata["kind"] == "function"  # type: ignore[union-attr]
                                         for h in tools.search_code("attempt", kind="function")["hits"])
    assert set(refs(kind=["method", "class"])) == {r for r in everything if r.startswith("src/app/retry.py:1")}
    # a prefix is a string prefix of the path: "src/" is not "srcgen/", "./src" means "src"
    assert {r.split(":")[0] for r in refs(path_prefix="src/")} == {"src/app/retry.py", "src/app/server.go"}
    assert refs(path_prefix="./src/app/retry") == [r for r in everything if r.startswith("src/app/retry.py")]
    assert {r.split(":")[0] for r in refs(path_prefix="src")} == {r.split(":")[0] for r in everything}
    assert refs(path_prefix="docs/") == []
    assert refs(language=["go", "python"], path_prefix="srcgen/") == [r for r in everything if r.startswith("srcgen")]


def test_search_code_snippet_is_the_best_window(code_collection: Path, code_repo: Path) -> None:
    hit = CollectionTools(code_collection).search_code("attempt limit backoff", path_prefix="srcgen/")["hits"][0]
    assert (hit["start_line"], hit["end_line"]) == (1, 33)
    assert "finally the attempt limit" in hit["snippet"] and hit["snippet_start_line"] > 1
    assert hit["snippet"] == _file_lines(code_repo, "srcgen/tasks.py", hit["snippet_start_line"],
                                         hit["snippet_start_line"] + hit["snippet"].count("\n"))


def test_search_code_needs_a_code_collection_and_valid_arguments(collection: Path, code_collection: Path) -> None:
    with pytest.raises(RetrievekitError, match="code collection"):
        CollectionTools(collection).search_code("honey")
    tools = CollectionTools(code_collection)
    with pytest.raises(RetrievekitError, match="language must be"):
        tools.search_code("retry", language=[])
    with pytest.raises(RetrievekitError, match="no document has kind 'func'; the values here are: class, function"):
        tools.search_code("retry", kind="func")
