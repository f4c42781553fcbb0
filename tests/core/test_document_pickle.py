"""Documents cross process boundaries (parallel ingest workers, Ray) by pickle."""

from __future__ import annotations

import pickle

from retrievekit.core.document import Document


def test_document_pickles_as_its_fields() -> None:
    doc = Document(id="d1", text="some text", title="A title", metadata={"year": 2020, "tags": ["a", "b"]})
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        back = pickle.loads(pickle.dumps([doc, doc], protocol=protocol))
        assert back == [doc, doc] and type(back[0]) is Document
        assert back[0].metadata == {"year": 2020, "tags": ["a", "b"]}
    assert pickle.loads(pickle.dumps(Document(id="e"))) == Document(id="e", text="", title="", metadata={})
