"""``retrievekit ask --timeout``: a hanging generator endpoint fails the command in the time asked."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

pytest.importorskip("httpx")

from retrievekit import Collection
from retrievekit.cli.main import main


def _silent_endpoint() -> tuple[socket.socket, str]:
    """A server that accepts connections, reads the request and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            held.append(conn)  # kept open, never answered

    threading.Thread(target=accept, daemon=True).start()
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def test_ask_timeout_bounds_a_hanging_generator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Regression: a hanging generator took 486 s (4 tries x 120 s and backoff) to fail, with no option to shorten it.
    col = Collection.create(tmp_path / "col")
    col.add([{"id": "bm25", "text": "BM25 was developed by Robertson and Sparck Jones."}])
    sock, url = _silent_endpoint()
    try:
        code = main(["ask", str(col.path), "who developed BM25", "--mode", "bm25", "--generator", f"openai:m@{url}",
                     "--timeout", "0.5"])
    finally:
        sock.close()
    err = capsys.readouterr().err
    assert code == 2 and "timed out after 0.5s" in err and "Traceback" not in err


@pytest.mark.parametrize(("args", "message"), [
    (["--timeout", "0"], "--timeout must be a positive number of seconds"),
    (["--timeout", "5", "--generator", "local"], "--timeout applies to openai:MODEL@URL generators"),
])
def test_ask_timeout_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                message: str) -> None:
    col = Collection.create(tmp_path / "col")
    col.add([{"id": "a", "text": "alpha"}])
    assert main(["ask", str(col.path), "alpha", *args]) == 2
    assert message in capsys.readouterr().err
