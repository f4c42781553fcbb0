"""One HTML-to-text extractor: the files reader and the html chunker give the same text for the same page."""

from __future__ import annotations

import re
from pathlib import Path

from retrievekit.chunking import HTMLChunker, HTMLText
from retrievekit.ingest import read_documents

PAGE = """<!DOCTYPE html><html><head><title> Prices  &amp; plans </title>
<style>td { color: red }</style><script>var hidden = "<p>no</p>";</script></head>
<body><h1>Plans</h1><p>Pick a plan<br>any time, &lt;no&gt; fees.</p>
<svg width="10"><title>logo</title><text x="0">SVG TEXT</text></svg>
<table><thead><tr><th>Plan</th><th>Price</th></tr></thead>
<tbody><tr><td>Basic</td><td>$5</td></tr><tr><td>Pro</td><td>$20</td></tr></tbody></table>
<h2>Code</h2><pre>  indented
    code</pre><ul><li>one</li><li>two</li></ul></body></html>"""


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_reader_and_chunker_give_the_same_text(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text(PAGE, encoding="utf-8")
    (doc,) = read_documents(tmp_path)
    assert doc.title == "Prices & plans"
    assert doc.text == HTMLText(PAGE, include_title=False).text
    assert doc.text.splitlines() == ["Plans", "Pick a plan", "any time, <no> fees.", "Plan Price", "Basic $5",
                                     "Pro $20", "Code", "  indented", "    code", "one", "two"]
    # the chunker's text is the title line, then exactly the reader's text; every chunk is a piece of it, in order
    whole = HTMLText(PAGE)
    assert whole.title == doc.title and whole.text == doc.title + "\n" + doc.text
    for budget in (1000, 6):
        chunks = HTMLChunker(budget).chunk("page", PAGE)
        assert chunks[0].text == doc.title and len(chunks) >= 2
        assert all(c.text == whole.text[c.metadata["text_start"] : c.metadata["text_end"]] for c in chunks)
        assert all(c.text in doc.text for c in chunks[1:])
        assert squash("".join(c.text for c in chunks)) == squash(whole.text)  # chunks are trimmed: compare w/o space
    for text in (doc.text, whole.text):
        assert "SVG" not in text and "logo" not in text and "hidden" not in text and "color" not in text


def test_an_unclosed_title_does_not_swallow_the_page() -> None:
    extracted = HTMLText("<title>Page<p>body text</p>", include_title=False)
    assert extracted.title == "Page" and extracted.text == "body text"
    assert HTMLText("<title>Page<p>body text</p>").text == "Page\nbody text"
