"""A stdio MCP (Model Context Protocol) server exposing a collection to LLM clients.

Tools: ``search`` (ranked hits with id, title, score and a snippet), ``get_document`` (one document in full) and
``collection_info``. Built on the official MCP Python SDK (``mcp``, extra ``serve``). stdout carries the protocol
only: logging goes to stderr, and while serving the SDK points file descriptor 1 at stderr so stray output of
native libraries cannot corrupt the stream.

    retrievekit mcp my-collection --mode hybrid
    python -m retrievekit.serve.mcp my-collection

Client configuration (e.g. Claude Desktop): ``{"command": "retrievekit", "args": ["mcp", "/path/to/collection"]}``.
"""

# No ``from __future__ import annotations``: the SDK reads the tool signatures' annotations at registration, and
# they refer to pydantic's Field, imported only when serving (so the CLI can import this module without the extra).
import argparse
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from retrievekit.collection import Collection
from retrievekit.core.errors import CollectionError, RetrievekitError, require
from retrievekit.serve.redact import redact_paths
from retrievekit.service.documents import describe_document
from retrievekit.service.info import collection_info
from retrievekit.service.search import MAX_QUERY_CHARS, PLAIN_HITS, SearchRequest, search
from retrievekit.service.types import MODES, ServiceError, check_mode

logger = logging.getLogger(__name__)

MAX_K = 100
SearchMode = Literal["bm25", "dense", "hybrid", "sparse"]


def _sdk() -> tuple[type, type[Exception]]:
    """(server class, ToolError) of the installed MCP SDK: ``MCPServer`` in mcp 2.x, ``FastMCP`` in 1.x."""
    require("mcp", "serve")  # a clear "install retrievekit[serve]" error when the SDK is missing
    try:
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ToolError
    except ImportError:
        from mcp.server.fastmcp import FastMCP as MCPServer  # type: ignore[no-redef,attr-defined,unused-ignore]
        from mcp.server.fastmcp.exceptions import ToolError  # type: ignore[no-redef,unused-ignore]
    return MCPServer, ToolError


class CollectionTools:
    """The tool implementations, independent of the protocol: plain dicts in, plain dicts out, and
    ``RetrievekitError`` naming the problem for bad arguments."""

    def __init__(self, collection: str | Path | Collection, *, mode: str | None = None) -> None:
        self.col = collection if isinstance(collection, Collection) else Collection(collection)
        try:
            self.default_mode = check_mode(self.col, mode)
        except ServiceError as exc:
            raise CollectionError(f"{exc} (the collection at {self.col.path})") from None

    def search(self, query: str, k: int = 10, mode: str | None = None,
               filter: dict[str, Any] | None = None) -> dict[str, Any]:
        request = SearchRequest(query, k=k, mode=mode or self.default_mode, filter=filter, max_k=MAX_K)
        out = search(self.col, request).to_json(PLAIN_HITS)
        return {key: out[key] for key in ("query", "mode", "k", "hits")}

    def get_document(self, id: str) -> dict[str, Any]:
        return describe_document(self.col, id)

    def collection_info(self) -> dict[str, Any]:
        return collection_info(self.col, default_mode=self.default_mode).to_json()


def build_server(collection: str | Path | Collection, *, mode: str | None = None, name: str = "retrievekit") -> Any:
    """An MCP server object (SDK ``MCPServer``/``FastMCP``) with the three tools registered; ``.run()`` serves stdio."""
    server_cls, tool_error = _sdk()
    from pydantic import Field  # installed with the MCP SDK

    tools = CollectionTools(collection, mode=mode)
    modes = tools.col.modes()
    server = server_cls(
        name,
        instructions=f"Search the retrievekit collection {tools.col.path.name!r} ({len(tools.col)} documents). "
        "Use `search` to find documents, then `get_document` to read one in full.",
        log_level="WARNING",
    )

    def call(fn: Any, *args: Any) -> dict[str, Any]:
        # Expected failures become ToolError so the client sees the message (the SDK hides other exceptions);
        # the client is told no server path (the full message is logged).
        try:
            return fn(*args)  # type: ignore[no-any-return,unused-ignore]
        except RetrievekitError as exc:
            logger.warning("%s failed: %s", getattr(fn, "__name__", "tool"), exc)
            raise tool_error(redact_paths(str(exc), [(tools.col.path, "<collection>")])) from exc
        except OSError as exc:  # e.g. a segment file removed under a running server
            logger.warning("%s failed: %s", getattr(fn, "__name__", "tool"), exc)
            name = f" ({Path(exc.filename).name})" if isinstance(exc.filename, str) else ""
            raise tool_error(f"the collection cannot be read: {exc.strerror or type(exc).__name__}{name}") from exc

    @server.tool(description="Search the collection. Returns ranked hits (rank, id, title, score, snippet, "
                 f"metadata). Modes available here: {', '.join(modes)} (default {tools.default_mode}).")
    def search(
        query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS, description="what to look for")],
        k: Annotated[int, Field(ge=1, le=MAX_K, description="number of hits")] = 10,
        mode: Annotated[SearchMode | None, Field(description="ranking: bm25 (keywords), dense (embeddings), "
                                                 "hybrid (both) or sparse; default: the server's")] = None,
        filter: Annotated[dict[str, Any] | None, Field(description='metadata filter, e.g. {"year": {"gte": 2020}, '
                                                       '"lang": "en"}; operators eq ne in nin gt gte lt lte '
                                                       "exists")] = None,
    ) -> dict[str, Any]:
        return call(tools.search, query, k, mode, filter)

    @server.tool(description="Fetch one document in full (id, title, text, metadata) by its id.")
    def get_document(id: Annotated[str, Field(min_length=1, description="document id from a search hit")]
                     ) -> dict[str, Any]:
        return call(tools.get_document, id)

    @server.tool(description="Statistics and settings of the collection: documents, segments, analyzer, dense "
                 "indexes, disk use, and the search modes available.")
    def collection_info() -> dict[str, Any]:
        return call(tools.collection_info)

    return server


def serve_mcp(collection_path: str | Path, *, mode: str | None = None) -> None:
    """Serve the collection over stdio until the client closes the stream."""
    server = build_server(collection_path, mode=mode)
    logger.info("serving %s over MCP stdio", collection_path)
    server.run("stdio")


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", help="collection folder")
    p.add_argument("--mode", choices=MODES,
                   help="default search mode (default: hybrid if the collection has a dense index, else bm25)")


def _run(args: argparse.Namespace) -> int:
    serve_mcp(args.collection, mode=args.mode)
    return 0


def add_mcp(sub: argparse._SubParsersAction) -> None:
    """Register ``retrievekit mcp PATH [--mode M]``."""
    p = sub.add_parser("mcp", help="serve a collection to LLM clients over MCP (stdio)",
                       description="Run a Model Context Protocol server on stdin/stdout with the tools search, "
                       "get_document and collection_info. Logs go to stderr. Needs retrievekit[serve].")
    _add_arguments(p)
    p.set_defaults(func=_run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m retrievekit.serve.mcp",
                                     description="Serve a collection over MCP (stdio).")
    _add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except RetrievekitError as exc:
        print(f"retrievekit mcp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
