"""``retrievekit serve``: the HTTP API and web UI of a collection."""

from __future__ import annotations

import argparse
import math
import os

from retrievekit.core.errors import RetrievekitError

API_KEY_ENV = "RETRIEVEKIT_API_KEY"


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a collection over HTTP (JSON API + web UI)",
        description="Serve a collection: a JSON API (search, questions answered with citations, documents, stats, "
        "evaluation reports; OpenAPI docs at /docs) and a web UI at /ui/. Listens on 127.0.0.1 unless told "
        "otherwise; any other address needs an API key. Needs retrievekit[serve].",
    )
    p.add_argument("collection", help="collection folder (plain, or sharded: a folder holding cluster.json)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; a non-loopback address needs --api-key)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--api-key", metavar="KEY", default=None,
                   help=f"require 'Authorization: Bearer KEY' on every API call (default: ${API_KEY_ENV}; passing "
                   "it in the environment keeps it out of the process list)")
    p.add_argument("--cors", metavar="ORIGIN", nargs="+", action="extend", default=[],
                   help="allow browsers on these origins to call the API (e.g. http://localhost:3000); default: none")
    p.add_argument("--max-body-mb", type=float, default=10.0, metavar="N",
                   help="largest request body accepted, in MiB (default 10)")
    p.add_argument("--rate-limit", type=float, default=None, metavar="R",
                   help="requests per second allowed per client address on /api (bursts of 2R); default: no limit")
    p.add_argument("--reports", metavar="DIR", default=None,
                   help="folder of evaluation reports for the evaluate page (default: COLLECTION/reports)")
    p.add_argument("--generator", metavar="SPEC", default=None,
                   help="what answers questions at /api/ask and on the Ask page: 'local' (the offline gemma-3-270m, "
                   "loaded on the first question), 'openai:MODEL@URL' (an OpenAI-compatible server) or "
                   "'local:PATH_OR_NAME'; default: none (questions get the selected contexts, no answer text)")
    p.add_argument("--header-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="close a connection that has not sent a complete request head this long after connecting "
                   "or after its last response (default 10)")
    p.add_argument("--keep-alive", type=int, default=5, metavar="SECONDS",
                   help="close an idle kept-alive connection after this long (default 5)")
    p.add_argument("--max-connections", type=int, default=256, metavar="N",
                   help="answer 503 to requests beyond N open connections (default 256)")
    p.add_argument("--max-image-mb", type=float, default=10.0, metavar="N",
                   help="largest image upload for image search, in MiB (default 10)")
    p.add_argument("--image-root", action="append", default=[], metavar="DIR",
                   help="serve original image files (GET /api/documents/ID/image) from inside DIR only "
                   "(repeatable; default: none are served, thumbnails still are)")
    p.add_argument("--document-root", action="append", default=[], metavar="DIR",
                   help="serve the PDF, Office, EPUB and e-mail files of documents indexed from DIR (GET "
                   "/api/documents/ID/file; citations then link to their PDF page) from inside DIR only "
                   "(repeatable; default: none are served)")
    from retrievekit.cli.commands import add_ray_option

    add_ray_option(p)
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from retrievekit.serve import ServeError

    if not (args.max_body_mb > 0 and math.isfinite(args.max_body_mb)):
        raise ServeError(f"--max-body-mb must be a positive number, got {args.max_body_mb}")
    if args.rate_limit is not None and not (args.rate_limit > 0 and math.isfinite(args.rate_limit)):
        raise ServeError(f"--rate-limit must be a positive number of requests per second, got {args.rate_limit}")
    if not (args.header_timeout > 0 and math.isfinite(args.header_timeout)):
        raise ServeError(f"--header-timeout must be a positive number of seconds, got {args.header_timeout}")
    if args.keep_alive < 1 or args.max_connections < 1:
        raise ServeError(f"--keep-alive and --max-connections must be at least 1, got {args.keep_alive} and "
                         f"{args.max_connections}")
    if not (args.max_image_mb > 0 and math.isfinite(args.max_image_mb)):
        raise ServeError(f"--max-image-mb must be a positive number, got {args.max_image_mb}")
    for flag, roots in (("--image-root", args.image_root), ("--document-root", args.document_root)):
        for root in roots:
            if not os.path.isdir(root):
                raise ServeError(f"{flag} {root!r} is not a folder")
    if not 0 <= args.port <= 65535:
        raise ServeError(f"--port must be between 0 and 65535, got {args.port}")
    from retrievekit.serve.app import run

    run(args.collection, host=args.host, port=args.port, api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        cors_origins=args.cors, max_body_bytes=int(args.max_body_mb * 2**20), rate_limit=args.rate_limit,
        reports=args.reports, generator=args.generator or None, header_timeout=args.header_timeout,
        keep_alive=args.keep_alive, max_connections=args.max_connections, ray=args.ray,
        max_image_bytes=int(args.max_image_mb * 2**20), image_roots=args.image_root,
        document_roots=args.document_root)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m retrievekit.cli.serve PATH ...``: the same command on its own."""
    import logging
    import sys

    parser = argparse.ArgumentParser(prog="retrievekit")
    add_serve(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run_serve(args)
    except RetrievekitError as exc:
        print(f"retrievekit serve: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
