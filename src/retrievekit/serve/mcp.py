"""A stdio MCP (Model Context Protocol) server exposing a collection to LLM clients.

Tools: ``search`` (ranked hits with id, title, score and a snippet), ``search_code`` (for code collections made
by ``retrievekit index --code``: hits as ``path:start-end`` with symbol, kind, language and the best-matching
lines; filters by language, kind and path prefix), ``get_document`` (one document in full) and
``collection_info``. In an image collection a hit names its image file (``image``, the path) and its
``caption``; no tool returns the inline base64 thumbnail. Built on the official MCP Python SDK (``mcp``, extra
``serve``). stdout carries the protocol only: logging goes to stderr, and while serving the SDK points file
descriptor 1 at stderr so stray output of native libraries cannot corrupt the stream.

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
from retrievekit.core.provenance import DOCUMENT_ONLY, document_page_reference
from retrievekit.serve.redact import redact_paths
from retrievekit.service.collections import is_sharded_folder
from retrievekit.service.documents import describe_document
from retrievekit.service.images import public_metadata
from retrievekit.service.info import collection_info
from retrievekit.service.search import MAX_QUERY_CHARS, PLAIN_HITS, SearchRequest, search
from retrievekit.service.types import MODES, ServiceError, check_mode, finite

logger = logging.getLogger(__name__)

MAX_K = 100
SearchMode = Literal["bm25", "dense", "hybrid", "sparse"]
SNIPPET_LINES = 12  # lines of a code hit's snippet: the window of the symbol with the most query terms
SNIPPET_LINE_CHARS = 160  # longer lines are cut (minified code would otherwise fill the answer)
CODE_FIELDS = ("path", "start_line", "end_line")  # what makes a document a code document here


def _prefix_range(prefix: str) -> dict[str, str]:
    """The filter condition of the strings that start with ``prefix``: prefix <= s < prefix with its last character
    incremented (exact, by string order)."""
    return {"gte": prefix, "lt": prefix[:-1] + chr(ord(prefix[-1]) + 1)}


def _one_or_more(value: str | list[str] | None, name: str) -> Any:
    """A filter condition for one value or any of a list (None: no condition)."""
    if value is None:
        return None
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise ServiceError("bad_request", f"{name} must be a non-empty string or list of strings, got {value!r}",
                           param=name)
    return values[0] if len(values) == 1 else {"in": values}


def code_snippet(text: str, header_chars: int, first_line: int, terms: set[str], analyzer: Any
                 ) -> tuple[str, int]:
    """(snippet, its first line in the file): the ``SNIPPET_LINES`` consecutive lines of a code document's file span
    (``text[header_chars:]``) with the most query terms, the earliest such window on ties; long lines cut."""
    lines = text[header_chars:].split("\n")
    start = 0
    if len(lines) > SNIPPET_LINES and terms:
        counts = [sum(t in terms for t in tokens) for tokens in analyzer.analyze_batch(lines)]
        window = sum(counts[:SNIPPET_LINES])
        best = window
        for i in range(1, len(lines) - SNIPPET_LINES + 1):
            window += counts[i + SNIPPET_LINES - 1] - counts[i - 1]
            if window > best:
                best, start = window, i
    shown = [line if len(line) <= SNIPPET_LINE_CHARS else line[:SNIPPET_LINE_CHARS] + " …"
             for line in lines[start:start + SNIPPET_LINES]]
    return "\n".join(shown).rstrip(), first_line + start


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


def image_hit(hit: dict[str, Any], document: Any) -> dict[str, Any]:
    """An image document's hit for a model: its image file's path and its caption, and no inline base64
    thumbnail (kilobytes of context that say nothing to a language model)."""
    metadata = document.metadata
    hit["metadata"] = public_metadata(hit.get("metadata") or {})
    if isinstance(metadata.get("image"), str):
        hit["image"] = metadata["image"]
        hit["caption"] = document.text
    return hit


def document_hit(hit: dict[str, Any], document: Any) -> dict[str, Any]:
    """A PDF's or slide deck's hit for a model: its page reference (``location``: "paper.pdf p. 12"), and its
    metadata without the per-page and per-section span lists (hundreds of numbers for a long PDF)."""
    location = document_page_reference(document.metadata, len(document.text))
    if location is not None:
        hit["location"] = location
    metadata = hit.get("metadata") or {}
    if any(isinstance(metadata.get(key), list) for key in DOCUMENT_ONLY):
        hit["metadata"] = {k: v for k, v in metadata.items() if k not in DOCUMENT_ONLY or not isinstance(v, list)}
    return hit


def _plain_result(response: Any) -> dict[str, Any]:
    """A search response as MCP returns it: plain hits with image paths/captions and document pages, no timing."""
    out = response.to_json(PLAIN_HITS)
    for hit, found in zip(out["hits"], response.hits):
        image_hit(hit, found.document)
        document_hit(hit, found.document)
    return {key: out[key] for key in ("query", "mode", "k", "hits")}


class CollectionTools:
    """The tool implementations, independent of the protocol: plain dicts in, plain dicts out, and
    ``RetrievekitError`` naming the problem for bad arguments."""

    def __init__(self, collection: str | Path | Collection, *, mode: str | None = None) -> None:
        if not isinstance(collection, Collection) and is_sharded_folder(collection):
            raise CollectionError(f"{collection} is a sharded collection: the MCP server serves plain collections "
                                  "only (its code search and document tools read one collection's files); serve it "
                                  "over HTTP with `retrievekit serve`")
        self.col = collection if isinstance(collection, Collection) else Collection(collection)
        try:
            self.default_mode = check_mode(self.col, mode)
        except ServiceError as exc:
            raise CollectionError(f"{exc} (the collection at {self.col.path})") from None

    def search(self, query: str, k: int = 10, mode: str | None = None,
               filter: dict[str, Any] | None = None) -> dict[str, Any]:
        request = SearchRequest(query, k=k, mode=mode or self.default_mode, filter=filter, max_k=MAX_K)
        response = search(self.col, request)
        return _plain_result(response)

    def search_images(self, image_path: str, k: int = 10, text: str | None = None,
                      weight: float = 0.5) -> dict[str, Any]:
        """Image query (a local image file; MCP runs on the user's machine): similar images first, or with ``text``
        a composed query. Needs an image-text (CLIP) index."""
        from retrievekit.service.images import ImageSearchRequest, search_image

        path = Path(image_path).expanduser()
        if not path.is_file():
            raise ServiceError("bad_request", f"no image file at {image_path}", param="image_path")
        request = ImageSearchRequest(path.read_bytes(), k=k, text=text, weight=weight)
        response = search_image(self.col, request)
        return _plain_result(response)

    def search_code(self, query: str, k: int = 10, mode: str | None = None, language: str | list[str] | None = None,
                    kind: str | list[str] | None = None, path_prefix: str | None = None) -> dict[str, Any]:
        """Code hits: ``path:start-end`` with symbol, kind, language, signature, score and the best-matching lines.
        Only code documents (with path and line metadata) are searched."""
        fields = self.col.snapshot().metadata_fields()
        if not all(f in fields for f in CODE_FIELDS):
            raise ServiceError("bad_request", "search_code needs a code collection (documents with path, start_line "
                               "and end_line metadata); this one has none: index a repository with `retrievekit "
                               "index --code REPOSITORY COLLECTION`, or use `search`")
        conditions: dict[str, Any] = {"language": _one_or_more(language, "language"),
                                      "kind": _one_or_more(kind, "kind"), "start_line": {"exists": True}}
        if path_prefix is not None:
            # core.filters has no glob operator (yet): a prefix is matched exactly as a string range instead. Use a
            # glob here once filters have one.
            if not isinstance(path_prefix, str):
                raise ServiceError("bad_request", f"path_prefix must be a string, got {path_prefix!r}",
                                   param="path_prefix")
            prefix = path_prefix.strip().removeprefix("./").lstrip("/")
            if prefix.endswith(chr(sys.maxunicode)):  # no string follows it: the range has no upper end
                raise ServiceError("bad_request", "path_prefix cannot end with U+10FFFF", param="path_prefix")
            if prefix:
                conditions["path"] = _prefix_range(prefix)
        filter = {f: c for f, c in conditions.items() if c is not None}
        response = search(self.col, SearchRequest(query, k=k, mode=mode or self.default_mode, filter=filter,
                                                  max_k=MAX_K))
        if not response.hits:
            self._check_values(language=language, kind=kind)
        terms = set(self.col.analyzer.analyze(query))
        hits = []
        for hit in response.hits:
            doc, meta = hit.document, hit.document.metadata
            start_line, end_line = int(meta["start_line"]), int(meta["end_line"])
            header = meta.get("header_chars")
            snippet, snippet_line = code_snippet(doc.text, header if isinstance(header, int) else 0, start_line,
                                                 terms, self.col.analyzer)
            hits.append({"rank": hit.rank, "id": doc.id, "path": meta["path"], "start_line": start_line,
                         "end_line": end_line, "ref": f"{meta['path']}:{start_line}-{end_line}",
                         "symbol": meta.get("symbol"), "qualname": meta.get("qualname"), "kind": meta.get("kind"),
                         "language": meta.get("language"), "signature": meta.get("signature"),
                         "score": round(finite(float(hit.score)), 6), "snippet": snippet,
                         "snippet_start_line": snippet_line})
        return {"query": query, "mode": response.mode, "k": k, "hits": hits}

    def _check_values(self, **wanted: str | list[str] | None) -> None:
        """After a search that found nothing: a clear error when a language or kind asked for is one that no
        document has (a typo would otherwise look like "no results"), naming the values there are."""
        snapshot = self.col.snapshot()
        for name, value in wanted.items():
            if value is None:
                continue
            present: set[str] = set()
            for seg in snapshot.segments:
                column = seg.metadata_columns([name]).get(name) or []
                present.update(v for v in column if isinstance(v, str))
            unknown = [v for v in ([value] if isinstance(value, str) else value) if v not in present]
            if unknown:
                raise ServiceError("bad_request", f"no document has {name} {', '.join(map(repr, unknown))}; the "
                                   f"values here are: {', '.join(sorted(present)) or 'none'}", param=name)

    def get_document(self, id: str) -> dict[str, Any]:
        out = describe_document(self.col, id)
        out["metadata"] = public_metadata(out.get("metadata") or {})  # no inline base64 thumbnail
        return out

    def collection_info(self) -> dict[str, Any]:
        return collection_info(self.col, default_mode=self.default_mode).to_json()


def build_server(collection: str | Path | Collection, *, mode: str | None = None, name: str = "retrievekit") -> Any:
    """An MCP server object (SDK ``MCPServer``/``FastMCP``) with the tools registered; ``.run()`` serves stdio."""
    server_cls, tool_error = _sdk()
    from pydantic import Field  # installed with the MCP SDK

    tools = CollectionTools(collection, mode=mode)
    modes = tools.col.modes()
    server = server_cls(
        name,
        instructions=f"Search the retrievekit collection {tools.col.path.name!r} ({len(tools.col)} documents). "
        "Use `search` to find documents (`search_code` for source code indexed by symbol: hits as path:start-end), "
        "then `get_document` to read one in full.",
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
                 "metadata; an image's hit adds its file path as image and its caption, a PDF's or slide deck's "
                 "hit its page reference as location, e.g. 'paper.pdf p. 12'). "
                 f"Modes available here: {', '.join(modes)} (default {tools.default_mode}).")
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

    @server.tool(description="Search a code repository indexed by symbol (retrievekit index --code) in natural "
                 "language or with a code snippet. Returns ranked hits with path, start_line/end_line (ref = "
                 "path:start-end), symbol, qualname, kind, language, signature, score and the best-matching lines "
                 "(snippet, from snippet_start_line). Use get_document with a hit's id for the whole symbol.")
    def search_code(
        query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS,
                                    description="what the code does, identifiers, or a code snippet")],
        k: Annotated[int, Field(ge=1, le=MAX_K, description="number of hits")] = 10,
        mode: Annotated[SearchMode | None, Field(description="ranking: bm25, dense, hybrid or sparse; default: "
                                                 "the server's")] = None,
        language: Annotated[str | list[str] | None, Field(description="only this language or these languages, "
                                                          "e.g. python, go, typescript")] = None,
        kind: Annotated[str | list[str] | None, Field(description="only these symbol kinds, e.g. function, method, "
                                                      "class")] = None,
        path_prefix: Annotated[str | None, Field(max_length=1024, description="only files whose path starts with "
                                                 "this, e.g. src/server/ (end a folder with /)")] = None,
    ) -> dict[str, Any]:
        return call(tools.search_code, query, k, mode, language, kind, path_prefix)

    @server.tool(description="Search an image collection by example: the path of a local image file; similar images "
                 "first (hits with image path and caption), or with text a composed query (this image, changed as "
                 "the text says; weight = the text's share). Needs a collection indexed with a CLIP model.")
    def search_images(
        image_path: Annotated[str, Field(min_length=1, max_length=4096, description="path of a local image file")],
        k: Annotated[int, Field(ge=1, le=MAX_K, description="number of hits")] = 10,
        text: Annotated[str | None, Field(max_length=MAX_QUERY_CHARS, description="optional change to the "
                                          "image, e.g. 'at night'")] = None,
        weight: Annotated[float, Field(ge=0.0, le=1.0, description="the text's weight, 0..1")] = 0.5,
    ) -> dict[str, Any]:
        return call(tools.search_images, image_path, k, text, weight)

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
                       "search_code, get_document and collection_info. Logs go to stderr. Needs retrievekit[serve].")
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

