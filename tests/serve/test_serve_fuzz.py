"""Schema-driven fuzzing of every HTTP endpoint: requests generated from /openapi.json (valid and invalid ones)
must never get a 5xx, and every error must be JSON in the API's error shape."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from toy_encoder import ToyEncoder  # noqa: E402, F401  (registers the "toy" backend)

from retrievekit import Collection  # noqa: E402
from retrievekit.rag.generators.base import Generator  # noqa: E402
from retrievekit.serve.app import create_app  # noqa: E402

# Every operation of the API; test_every_operation_is_fuzzed keeps this list complete.
OPERATIONS = [
    ("GET", "/health"),
    ("GET", "/ready"),
    ("POST", "/api/search"),
    ("GET", "/api/search"),
    ("POST", "/api/ask"),
    ("GET", "/api/documents/{doc_id}"),
    ("POST", "/api/documents"),
    ("PUT", "/api/documents/{doc_id}"),
    ("DELETE", "/api/documents/{doc_id}"),
    ("GET", "/api/info"),
    ("GET", "/api/stats"),
    ("GET", "/api/eval/latest"),
    ("GET", "/api/eval/plots/{name}"),
    ("POST", "/api/search/image"),
    ("GET", "/api/documents/{doc_id}/thumbnail"),
    ("GET", "/api/documents/{doc_id}/image"),
    ("GET", "/api/documents/{doc_id}/file"),
]
EXAMPLES = 25  # per operation and generation mode: the whole file runs in well under a minute
# Path parameters that exist, so that the success paths are fuzzed too (generated ids almost never exist).
EXISTING = {"/api/documents/{doc_id}": {"doc_id": "d2"}, "/api/eval/plots/{name}": {"name": "metrics.png"}}


class CitingGenerator(Generator):
    """Answers every question citing the first two sources, so fuzzed asks go through generation and citations."""

    backend = "fuzz"

    def generate(self, prompt: Any, *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: str | Sequence[str] | None = None) -> str:
        return "Cats and dogs [1][2]."


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def schema() -> Iterator[Any]:
    with tempfile.TemporaryDirectory() as tmp:
        col = Collection.create(Path(tmp) / "col", dense="toy:bow")
        col.add([{"id": f"d{i}", "title": f"Doc {i}", "text": f"fuzzing text number {i} about cats and dogs",
                  "metadata": {"n": i, "tag": "even" if i % 2 == 0 else "odd"}} for i in range(20)])
        reports = col.path / "reports"
        reports.mkdir()
        (reports / "metrics.png").write_bytes(b"\x89PNG\r\n\x1a\n")
        (reports / "report.json").write_text(json.dumps({"system": "bm25", "ndcg@10": 0.5, "plots": ["metrics.png"]}))
        app = create_app(col.path, max_body_bytes=256 * 1024, generator=CitingGenerator())
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_operation_is_fuzzed(schema: Any) -> None:
    found = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert found == set(OPERATIONS)


def check_response(case: Any) -> None:
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, body
        assert isinstance(body["error"]["code"], str) and body["error"]["code"]
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    elif response.headers.get("content-type", [""])[0].startswith("application/json"):
        json.loads(response.text)
    case.validate_response(response, checks=CHECKS)


@pytest.mark.parametrize("operation", [f"{m} {p}" for m, p in OPERATIONS])
def test_fuzz(schema: Any, operation: str) -> None:
    method, path = operation.split(" ")
    op = schema[path][method]
    strategies = [op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE)]
    if path in EXISTING:
        strategies.append(op.as_strategy(GenerationMode.POSITIVE, path_parameters=EXISTING[path]))
    cases = st.one_of(strategies)

    @settings(max_examples=len(strategies) * EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def run(case: Any) -> None:
        check_response(case)

    run()
