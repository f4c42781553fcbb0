"""Synthetic queries (InPars / Promptagator): prompts, cleaning and rejection, seeded document choice, round-trip
filtering checked against independent searches, and resuming from the state file — with small deterministic
generators standing in for a language model, and once through the real OpenAI-compatible client over loopback."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from retrievekit import Collection
from retrievekit.core.document import Document
from retrievekit.core.errors import InputFormatError
from retrievekit.rag.generators.base import GenerationError, Generator, cut_at_stop, normalize_stop
from retrievekit.training import RoundTrip, TrainingDataError, TrainingExample, TrainingSet, generate_queries
from retrievekit.training.builders import document_text
from retrievekit.training.synthetic import build_prompt, clean_query, load_examples

TOPICS = ["solar panels", "river floods", "bread baking", "chess openings", "whale songs", "glacier melt",
          "bee colonies", "jazz chords", "rust compilers", "tea brewing", "moon phases", "desert plants"]
EXAMPLES = [("Kites fly well in strong steady wind on open beaches.", "where to fly a kite"),
            ("Sourdough needs a starter fed with flour and water daily.", "how to feed sourdough starter")]


def documents() -> list[Document]:
    return [Document(id=f"d{i}", title=topic.title(),
                     text=f"This note is about {topic}. Experts study {topic} every year. Many people enjoy reading "
                     f"about {topic} in long articles. The history of {topic} is old and rich. Item {i} ends here.")
            for i, topic in enumerate(TOPICS)]


def make_collection(path: Path, docs: Sequence[Document]) -> Collection:
    col = Collection.create(path)
    col.add(docs)
    return col


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Collection:
    return make_collection(tmp_path_factory.mktemp("synthetic") / "col", documents())


def target_document(prompt: Any) -> str:
    """The document a prompt asks about: the last "Document:" of a completion prompt, or the last user message."""
    if isinstance(prompt, str):
        return prompt.rsplit("Document: ", 1)[1].split("\nRelevant query:", 1)[0]
    return str(prompt[-1]["content"]).removeprefix("Document: ")


def title_query(document: str) -> str:
    return " ".join(document.split()[:2]).lower() + " facts"


class WordsGenerator(Generator):
    """A deterministic stand-in for a language model: the query is ``rule(document)`` for the document the prompt
    asks about. Completion style behaves like a base model (goes on past the query; the stop string cuts it), chat
    style like a chatty instruction model ('Query: "..."'). ``fail_after``: raise ``failure`` from that call on."""

    backend = "words"

    def __init__(self, style: str = "completion", rule: Callable[[str], str] = title_query, model: str = "words-1",
                 fail_after: int | None = None, failure: Exception | None = None) -> None:
        self.prompt_style, self.rule, self.model = style, rule, model
        self.fail_after, self.failure = fail_after, failure or GenerationError("the endpoint went away")
        self.calls: list[dict[str, Any]] = []

    def generate(self, prompt: Any, *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: str | Sequence[str] | None = None) -> str:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise self.failure
        self.calls.append({"prompt": prompt, "max_tokens": max_tokens, "temperature": temperature, "stop": stop})
        query = self.rule(target_document(prompt))
        if isinstance(prompt, str):
            return cut_at_stop(f" {query}\n\nDocument: and the model rambles on", normalize_stop(stop))[0]
        return f'Query: "{query}"'


def ids_of(data: TrainingSet) -> list[str | None]:
    return [e.positive_id for e in data]


# -- prompts and outputs -----------------------------------------------------------------------------------------
def test_few_shot_completion_prompt_shows_the_examples_then_the_document(collection: Collection) -> None:
    gen = WordsGenerator("completion")
    data = generate_queries(collection, gen, examples=EXAMPLES, limit=3, progress=False)
    assert len(gen.calls) == 3 and len(data) == 3
    prompt = gen.calls[0]["prompt"]
    assert isinstance(prompt, str) and gen.calls[0]["stop"] == ["\n"] and gen.calls[0]["max_tokens"] == 48
    blocks = prompt.split("\n\n")
    assert blocks[:2] == [f"Document: {d}\nRelevant query: {q}" for d, q in EXAMPLES]
    doc = collection.get(str(data[0].positive_id))
    assert doc is not None and blocks[2] == f"Document: {document_text(doc)}\nRelevant query:"
    e = data[0]
    assert e.query == title_query(document_text(doc)) and e.positive == document_text(doc)
    assert e.source == "synthetic" and e.query_id == f"syn-{e.positive_id}-0"


def test_chat_prompt_is_messages_and_the_answer_is_cleaned(collection: Collection) -> None:
    gen = WordsGenerator("chat")
    data = generate_queries(collection, gen, examples=EXAMPLES, limit=2, progress=False)
    messages = gen.calls[0]["prompt"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in messages[1:5]] == [f"Document: {EXAMPLES[0][0]}", EXAMPLES[0][1],
                                                      f"Document: {EXAMPLES[1][0]}", EXAMPLES[1][1]]
    assert gen.calls[0]["stop"] is None
    doc = collection.get(str(data[0].positive_id))
    assert doc is not None and messages[-1]["content"] == f"Document: {document_text(doc)}"
    assert data[0].query == title_query(document_text(doc))  # 'Query: "..."' -> the bare query


def test_zero_shot_prompts_and_truncation() -> None:
    long_doc = " ".join(f"w{i}" for i in range(1000))
    completion = build_prompt(long_doc, [], "completion", max_document_words=50)
    assert isinstance(completion, str)
    assert completion.startswith("Write a short search query") and completion.endswith("\nRelevant query:")
    assert "w49 ..." in completion and "w50" not in completion
    chat = build_prompt("a\n\nshort   document", [], "chat")
    assert isinstance(chat, list) and [m["role"] for m in chat] == ["system", "user"]
    assert chat[1]["content"] == "Document: a short document"


@pytest.mark.parametrize(("raw", "query"), [
    (' "solar panels cost"', "solar panels cost"), ("Query: bee colonies\nmore", "bee colonies"),
    ("\n\nHere is a query:\n- 'whale songs'", "whale songs"), ("“moon phases”", "moon phases"),
    ('"cut off by the stop', "cut off by the stop"), ('what is "bm25"', 'what is "bm25"'),
    ("q-learning basics", "q-learning basics"), ("Search query 2:   tea   brewing", "tea brewing"), ("  \n ", ""),
])
def test_clean_query(raw: str, query: str) -> None:
    assert clean_query(raw) == query


def test_junk_outputs_are_rejected_and_counted(collection: Collection) -> None:
    def rule(document: str) -> str:
        topic = document.split(" This note")[0].lower()
        junk = {"solar panels": "", "river floods": " ".join(["word"] * 40),
                "bread baking": f"Many people enjoy reading about {topic} in long articles"}
        return junk.get(topic, title_query(document))

    gen = WordsGenerator("chat", rule=rule)
    data = generate_queries(collection, gen, per_document=2, temperature=0.0, progress=False)
    stats = data.stats
    assert (stats["rejected_empty"], stats["rejected_too_long"], stats["rejected_copy"]) == (2, 2, 2)
    assert stats["rejected_duplicate"] == 9  # the 9 good documents' second (identical) samples
    assert stats["rejected"] == 15 and stats["generated"] == 24 and len(data) == 9 == stats["examples"]
    assert {e.positive_id for e in data} == {f"d{i}" for i in range(3, 12)}
    assert {e.query_id for e in data} == {f"syn-d{i}-0" for i in range(3, 12)}


def test_example_queries_and_loops_are_rejected(collection: Collection) -> None:
    """A small model answering with one of the prompt's example queries, or looping, gives a query that is not about
    the document: both are dropped and counted, and a query that merely shares words with an example is kept."""
    def rule(document: str) -> str:
        topic = document.split(" This note")[0].lower()
        bad = {"solar panels": "Where to fly a KITE?", "river floods": "how to feed sourdough starter",
               "bread baking": "the theory of the theory of the theory of the",
               "chess openings": "where to fly a kite over chess boards"}
        return bad.get(topic, title_query(document))

    data = generate_queries(collection, WordsGenerator("chat", rule=rule), examples=EXAMPLES, temperature=0.0,
                            progress=False)
    stats = data.stats
    assert (stats["rejected_example"], stats["rejected_repetitive"], stats["rejected"]) == (2, 1, 3)
    assert {e.positive_id for e in data} == {f"d{i}" for i in range(3, 12)}
    assert next(e.query for e in data if e.positive_id == "d3") == "where to fly a kite over chess boards"


def test_default_temperature_depends_on_samples_per_document(collection: Collection) -> None:
    one, several = WordsGenerator(), WordsGenerator()
    generate_queries(collection, one, limit=1, progress=False)
    generate_queries(collection, several, limit=1, per_document=2, progress=False)
    assert one.calls[0]["temperature"] == 0.0 and several.calls[0]["temperature"] > 0.0


# -- which documents ---------------------------------------------------------------------------------------------
def test_document_choice_is_seeded_and_ignores_storage_order(collection: Collection, tmp_path: Path) -> None:
    reversed_col = make_collection(tmp_path / "reversed", documents()[::-1])
    first = generate_queries(collection, WordsGenerator(), limit=5, seed=7, progress=False)
    assert first == generate_queries(collection, WordsGenerator(), limit=5, seed=7, progress=False)
    assert first == generate_queries(reversed_col, WordsGenerator(), limit=5, seed=7, progress=False)
    assert len(set(ids_of(first))) == 5 and first.stats["documents"] == 5
    others = {tuple(ids_of(generate_queries(collection, WordsGenerator(), limit=5, seed=s, progress=False)))
              for s in range(4)}
    assert len(others) > 1  # the seed changes the sample
    bigger = generate_queries(collection, WordsGenerator(), limit=8, seed=7, progress=False)
    assert ids_of(bigger)[:5] == ids_of(first)  # a larger limit adds documents to the smaller one's
    every = generate_queries(collection, WordsGenerator(), seed=7, progress=False)
    assert sorted(ids_of(every), key=str) == sorted(f"d{i}" for i in range(12))


# -- round-trip filtering ----------------------------------------------------------------------------------------
def mixed_rule(document: str) -> str:
    """On topic for some documents, another document's topic for others, words every document shares for the
    rest (where the document's rank depends on BM25's length normalisation)."""
    i = int(document.split("Item ")[1].split()[0])
    if i % 3 == 0:
        return f"{TOPICS[i]} facts"
    if i % 3 == 1:
        return f"{TOPICS[(i + 5) % len(TOPICS)]} facts"
    return "many people enjoy reading long articles"


@pytest.mark.parametrize("k", [1, 3])
def test_round_trip_keeps_exactly_the_queries_whose_document_is_found(collection: Collection, k: int) -> None:
    unfiltered = generate_queries(collection, WordsGenerator(rule=mixed_rule), progress=False)
    expected = [e for e in unfiltered
                if e.positive_id in {d for d, _ in collection.search(e.query, k).hits(0)}]  # one query at a time
    data = generate_queries(collection, WordsGenerator(rule=mixed_rule), round_trip=RoundTrip(k=k), progress=False)
    assert list(data) == expected
    assert 0 < len(expected) < len(unfiltered)
    assert data.stats["round_trip_kept"] == len(expected)
    assert data.stats["round_trip_dropped"] == len(unfiltered) - len(expected)
    assert {"d0", "d3", "d6", "d9"} <= {e.positive_id for e in data}  # on-topic queries find their document
    assert not {"d1", "d4", "d7", "d10"} & {e.positive_id for e in data}  # another topic's never do


def test_round_trip_checks_the_retriever_before_generating(collection: Collection) -> None:
    gen = WordsGenerator()
    with pytest.raises(Exception, match="dense"):
        generate_queries(collection, gen, round_trip=RoundTrip(k=1, mode="dense"), progress=False)
    assert gen.calls == []


# -- resuming ----------------------------------------------------------------------------------------------------
def state_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("failure", [GenerationError("the endpoint went away"), RuntimeError("a bug")])
def test_resume_after_a_failure_generates_only_the_rest(collection: Collection, tmp_path: Path,
                                                        failure: Exception) -> None:
    state = tmp_path / "state.jsonl"
    whole = generate_queries(collection, WordsGenerator(), examples=EXAMPLES, progress=False)
    flaky = WordsGenerator(fail_after=6, failure=failure)
    with pytest.raises(type(failure)):
        generate_queries(collection, flaky, examples=EXAMPLES, state=state, batch_size=4, progress=False)
    lines = state_lines(state)  # the failure fell mid-batch: what that batch had made is kept too
    assert lines[0]["format"] == "retrievekit-synthetic-queries" and len(lines) == 1 + 6
    rest = WordsGenerator()
    resumed = generate_queries(collection, rest, examples=EXAMPLES, state=state, batch_size=4, progress=False)
    assert len(rest.calls) == 12 - 6
    assert resumed == whole and resumed.stats["resumed"] == 6 and resumed.stats["generated"] == 6
    again = WordsGenerator()
    assert generate_queries(collection, again, examples=EXAMPLES, state=state, progress=False) == whole
    assert again.calls == []


class BatchingWordsGenerator(WordsGenerator):
    """``WordsGenerator`` that takes a whole batch of prompts per call, as a batching local model does."""

    batches = True

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.batch_sizes: list[int] = []

    def generate_many(self, prompts: Sequence[Any], *, max_tokens: int = 256, temperature: float = 0.0,
                      stop: str | Sequence[str] | None = None) -> list[str]:
        self.batch_sizes.append(len(prompts))
        return [self.generate(p, max_tokens=max_tokens, temperature=temperature, stop=stop) for p in prompts]


def test_a_batching_generator_gets_each_batch_of_prompts_in_one_call(collection: Collection) -> None:
    whole = generate_queries(collection, WordsGenerator(), examples=EXAMPLES, progress=False)
    batching = BatchingWordsGenerator()
    assert generate_queries(collection, batching, examples=EXAMPLES, batch_size=4, progress=False) == whole
    assert batching.batch_sizes == [4, 4, 4]  # 12 documents, one prompt each


def test_a_truncated_last_line_is_ignored(collection: Collection, tmp_path: Path) -> None:
    state = tmp_path / "state.jsonl"
    with pytest.raises(GenerationError):
        generate_queries(collection, WordsGenerator(fail_after=3), state=state, progress=False)
    with open(state, "ab") as f:
        f.write(b'{"doc": "d11", "i": 0, "raw": " half a li')  # a crash mid-write
    rest = WordsGenerator()
    data = generate_queries(collection, rest, state=state, progress=False)
    assert len(rest.calls) == 9 and data == generate_queries(collection, WordsGenerator(), progress=False)
    assert len(state_lines(state)) == 1 + 12  # every line whole again


def test_a_damaged_line_inside_the_state_file_is_named(collection: Collection, tmp_path: Path) -> None:
    state = tmp_path / "state.jsonl"
    generate_queries(collection, WordsGenerator(), limit=3, state=state, progress=False)
    lines = state.read_text().splitlines()
    lines[2] = "{not json"
    state.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFormatError, match=rf"{state.name}:3: damaged state line"):
        generate_queries(collection, WordsGenerator(), limit=3, state=state, progress=False)
    state.write_text('{"some": "other file"}\n')
    with pytest.raises(InputFormatError, match="not a synthetic query state file"):
        generate_queries(collection, WordsGenerator(), state=state, progress=False)


@pytest.mark.parametrize(("change", "named"), [
    ({"seed": 1}, "seed: 0 then, 1 now"), ({"examples": EXAMPLES[:1]}, "prompt_and_examples: "),
    ({"max_tokens": 20}, "max_tokens: 48 then, 20 now"),
    ({"model": "words-2"}, 'generator.model: "words-1" then, "words-2" now'), ({"style": "chat"}, "generator"),
])
def test_a_changed_setting_refuses_to_resume(collection: Collection, tmp_path: Path, change: dict[str, Any],
                                             named: str) -> None:
    state = tmp_path / "state.jsonl"
    base: dict[str, Any] = {"seed": 0, "examples": EXAMPLES, "max_tokens": 48}
    generate_queries(collection, WordsGenerator(), limit=3, state=state, progress=False, **base)
    before = state.read_bytes()
    gen = WordsGenerator(model=change.get("model", "words-1"), style=change.get("style", "completion"))
    settings = {**base, **{k: v for k, v in change.items() if k in base}}
    with pytest.raises(TrainingDataError, match="other settings") as info:
        generate_queries(collection, gen, limit=3, state=state, progress=False, **settings)
    assert str(state) in str(info.value) and named in str(info.value) and "delete the file" in str(info.value)
    assert gen.calls == [] and state.read_bytes() == before


def test_growing_limit_and_samples_reuses_the_state(collection: Collection, tmp_path: Path) -> None:
    state = tmp_path / "state.jsonl"
    generate_queries(collection, WordsGenerator(), limit=4, temperature=0.5, state=state, progress=False)
    more = WordsGenerator()
    data = generate_queries(collection, more, limit=6, per_document=2, temperature=0.5, state=state, progress=False)
    assert len(more.calls) == 6 * 2 - 4
    assert data == generate_queries(collection, WordsGenerator(), limit=6, per_document=2, temperature=0.5,
                                    progress=False)


# -- bad input ---------------------------------------------------------------------------------------------------
def test_bad_arguments(collection: Collection, tmp_path: Path) -> None:
    gen = WordsGenerator()
    with pytest.raises(TrainingDataError, match="per_document"):
        generate_queries(collection, gen, per_document=0)
    with pytest.raises(TrainingDataError, match="round-trip k"):
        RoundTrip(k=0)
    with pytest.raises(TrainingDataError, match="unknown round-trip mode 'splade'"):
        RoundTrip(mode="splade")
    with pytest.raises(TrainingDataError, match="example 2: the query must be a non-empty string"):
        generate_queries(collection, gen, examples=[("a doc", "a query"), ("another doc", " ")])
    with pytest.raises(TrainingDataError, match="example 1: expected a"):
        generate_queries(collection, gen, examples=["just a string"])  # type: ignore[list-item]
    with pytest.raises(TrainingDataError, match="no documents"):
        generate_queries(Collection.create(tmp_path / "empty"), gen)
    assert gen.calls == []


def test_examples_from_training_data_and_files(collection: Collection, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"document": d, "query": q}) + "\n" for d, q in EXAMPLES) + "\n")
    assert load_examples(pairs) == EXAMPLES
    training = tmp_path / "train.jsonl"
    TrainingSet([TrainingExample(query=q, positive=d, source="qrels") for d, q in EXAMPLES]).save(training)
    assert load_examples(training) == EXAMPLES
    by_set, by_pairs = WordsGenerator(), WordsGenerator()
    generate_queries(collection, by_set, examples=TrainingSet.load(training), limit=1, progress=False)
    generate_queries(collection, by_pairs, examples=EXAMPLES, limit=1, progress=False)
    assert by_set.calls == by_pairs.calls
    for text, message in [('{"document": "d", "query": "q"}\n{"document": "d"}\n', ":2: 'query' must be"),
                          ('{"document": "d", "query": "q"}\n{oops\n', ":2: invalid JSON"),
                          ('{"text": "d"}\n', ":1: expected 'document' and 'query'"),
                          ('{"query": "q", "positive": "p", "extra": 1}\n', ":1: unknown field"),
                          ("\n", "no examples")]:
        bad = tmp_path / "bad.jsonl"
        bad.write_text(text)
        with pytest.raises(InputFormatError, match=message):
            load_examples(bad)


def test_many_examples_are_a_seeded_choice_of_shots(collection: Collection) -> None:
    many = [(f"document number {i} about things", f"query {i}") for i in range(20)]
    gens = [WordsGenerator() for _ in range(3)]
    for gen, seed in zip(gens, (0, 0, 1)):
        generate_queries(collection, gen, examples=many, shots=4, seed=seed, limit=1, progress=False)
    prompts = [g.calls[0]["prompt"] for g in gens]
    assert prompts[0].count("Relevant query:") == 4 + 1 and prompts[0] == prompts[1]
    assert prompts[0].split("\n\n")[:4] != prompts[2].split("\n\n")[:4]


# -- the real OpenAI-compatible client ---------------------------------------------------------------------------
def test_openai_compatible_generator_over_loopback(collection: Collection) -> None:
    pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from http_helpers import ServerThread

    from retrievekit.rag.generators.base import get_generator
    from retrievekit.rag.generators.openai import OpenAICompatibleGenerator
    from retrievekit.rag.generators.openai_server import create_openai_app

    served = WordsGenerator("chat")
    with ServerThread(create_openai_app(served)) as server:
        data = generate_queries(collection, f"openai:words-1@{server.url}/v1", examples=EXAMPLES, limit=4,
                                progress=False)
        assert data == generate_queries(collection, WordsGenerator("chat"), examples=EXAMPLES, limit=4,
                                        progress=False)
        assert len(served.calls) == 4 and served.calls[0]["prompt"][0]["role"] == "system"
        assert served.calls[0]["max_tokens"] == 48 and served.calls[0]["temperature"] == 0.0
        served.calls.clear()
        with OpenAICompatibleGenerator("words-1", f"{server.url}/v1", api="completions", backoff=0.0) as client:
            completed = generate_queries(collection, client, examples=EXAMPLES, limit=4, progress=False)
        assert isinstance(served.calls[0]["prompt"], str) and served.calls[0]["stop"] == ["\n"]
        assert [e.query for e in completed] == [e.query for e in data]
        with pytest.raises(GenerationError):  # nothing listens on port 9: the failure reaches the caller
            bad = get_generator("openai:words-1@http://127.0.0.1:9/v1", max_retries=0, timeout=2)
            generate_queries(collection, bad, limit=1, progress=False)
