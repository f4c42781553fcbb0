"""Error messages in the command line's terms.

Library errors name Python parameters and methods (``format=``, ``Collection.create(path)``), which a command line
user cannot type. At the CLI boundary they are rewritten to name the flags and commands instead; the library keeps
speaking Python. tests/cli/test_cli_errors.py checks that each library phrase rewritten here still exists.
"""

from __future__ import annotations

import argparse
import re

# (library phrase, command line phrase)
REWRITES: list[tuple[str, str]] = [
    ("pass format= one of:", "pass --format, one of:"),
    ("create one with Collection.create(path) or `retrievekit index`",
     "create one with `retrievekit index SOURCE COLLECTION`"),
    ("add one with Collection.add_dense_index(...) or `retrievekit index --dense MODEL`",
     "add one with `retrievekit index SOURCE COLLECTION --dense MODEL`"),
    ("add one with Collection.add_sparse_index(...) or `retrievekit index --sparse`",
     "add one with `retrievekit index SOURCE COLLECTION --sparse`"),
    ("semantic passages need the collection's dense model: pass dense= too",
     "--passages semantic needs the collection's dense model: pass --dense too"),
]
LOCK_HINT = "or pass a lock timeout"


def cli_message(exc: Exception, parser: argparse.ArgumentParser | None) -> str:
    """``exc``'s message with library parameter and method names replaced by ``parser``'s flags and commands."""
    message = str(exc)
    for library, cli in REWRITES:
        message = message.replace(library, cli)
    if LOCK_HINT in message:
        flag = _flag(parser, "lock_timeout")
        message = message.replace(LOCK_HINT, f"or pass {flag} SECONDS" if flag else "and try again")
    param = getattr(exc, "param", None)  # a service request field (ServiceError), named first in its message
    if isinstance(param, str) and param:
        flag = _flag(parser, param)
        if flag:
            message = re.sub(rf"^{re.escape(param)}\b", flag, message)
    return message


def _flag(parser: argparse.ArgumentParser | None, dest: str) -> str | None:
    """The option string of ``parser``'s option stored in ``dest`` (the long one when there are two)."""
    for action in parser._actions if parser is not None else []:
        if action.dest == dest and action.option_strings:
            return max(action.option_strings, key=len)
    return None


def command_parser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser | None:
    """The subparser of ``command``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]  # type: ignore[no-any-return]
    return None
