"""Text generators for retrieval-augmented answers: a common interface, an OpenAI-compatible HTTP client and
local models (llama.cpp or transformers). Backends import their heavy dependencies only when constructed."""

from retrievekit.rag.generators.base import (
    GenerationError,
    Generator,
    GeneratorSpecError,
    PromptInput,
    get_generator,
    messages_to_text,
    register_generator,
)

__all__ = [
    "GenerationError",
    "Generator",
    "GeneratorSpecError",
    "LocalGenerator",
    "OpenAICompatibleGenerator",
    "PromptInput",
    "get_generator",
    "messages_to_text",
    "register_generator",
]


def __getattr__(name: str) -> object:
    # Lazy, so that importing the package needs neither httpx nor torch.
    if name == "OpenAICompatibleGenerator":
        from retrievekit.rag.generators.openai import OpenAICompatibleGenerator

        return OpenAICompatibleGenerator
    if name == "LocalGenerator":
        from retrievekit.rag.generators.local import LocalGenerator

        return LocalGenerator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
