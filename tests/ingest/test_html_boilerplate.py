"""Saved web pages lose their boilerplate — navigation, sidebars, the page's header and footer, search forms, dialogs,
hidden elements, scripts — in the files reader and the html chunker alike, while an article's own header stays, and
chunk offsets still map exactly into the extracted text and back to the source; tables keep their header (document
metadata, and the chunks cut from a table's middle)."""

from __future__ import annotations

import html
from pathlib import Path

from retrievekit.chunking import HTMLChunker, HTMLText
from retrievekit.ingest import read_documents

SAVED_PAGE = """<!DOCTYPE html><html><head><title>Tuning BM25 | Example Blog</title>
<script>window.analytics = {track: function () {}}; document.write("<p>TRACKER</p>");</script>
<style>nav { display: flex }</style></head>
<body>
<header class="site"><a href="/">Example Blog</a>
  <nav><ul><li><a href="/">Home</a></li><li><a href="/about">About us</a></li>
  <li><nav>Nested menu</nav> still menu</li></ul></nav></header>
<div id="cookie" role="dialog" hidden>We use cookies. Accept all?</div>
<form role="search"><input type="text" name="q"><button>Search site</button></form>
<main>
  <article>
    <header><h1>Tuning BM25</h1><p class="byline">By A. Writer, 3 May 2024</p></header>
    <p>BM25 has two parameters, k1 &amp; b.</p>
    <h2>Defaults</h2>
    <table><thead><tr><th>parameter</th><th>value</th></tr></thead>
    <tbody><tr><td>k1</td><td>0.9</td></tr><tr><td>b</td><td>0.4</td></tr></tbody></table>
    <pre><code>bm25 = BM25(k1=0.9, b=0.4)</code></pre>
    <ul><li>Tune k1 first.</li><li>Then tune b.</li></ul>
    <aside class="ad">Buy our course!</aside>
    <footer>Tags: ranking</footer>
  </article>
  <div aria-hidden="true">Share on social media</div>
</main>
<aside><h3>Related posts</h3><p>Ten ranking tricks</p></aside>
<footer role="contentinfo">&copy; 2024 Example Blog. All rights reserved.</footer>
<script>trackPageView();</script>
</body></html>"""

MAIN_TEXT = ["Tuning BM25", "By A. Writer, 3 May 2024", "BM25 has two parameters, k1 & b.", "Defaults",
             "parameter value", "k1 0.9", "b 0.4", "bm25 = BM25(k1=0.9, b=0.4)", "Tune k1 first.", "Then tune b.",
             "Tags: ranking"]
BOILERPLATE = ["Home", "About us", "Nested menu", "still menu", "cookies", "Search site", "Buy our course",
               "Share on social", "Related posts", "Ten ranking", "rights reserved", "TRACKER", "analytics",
               "display"]


def test_reader_keeps_the_article_and_drops_the_boilerplate(tmp_path: Path) -> None:
    (tmp_path / "post.html").write_text(SAVED_PAGE, encoding="utf-8")
    (doc,) = read_documents(tmp_path)
    assert doc.title == "Tuning BM25 | Example Blog"
    assert doc.text.splitlines() == MAIN_TEXT, f"text of the saved page {tmp_path / 'post.html'}"
    # everything the page holds is still there when boilerplate is kept (the extractor's default)
    everything = HTMLText(SAVED_PAGE, include_title=False).text
    assert all(word in everything for word in ["Home", "About us", "Related posts", "rights reserved"])
    assert not any(word in doc.text for word in BOILERPLATE)


def test_chunks_of_the_page_are_exact_in_text_and_source() -> None:
    extracted = HTMLText(SAVED_PAGE, drop_boilerplate=True)
    assert extracted.text.splitlines() == ["Tuning BM25 | Example Blog", *MAIN_TEXT]
    for budget in (1000, 8):
        chunks = HTMLChunker(budget).chunk("post", SAVED_PAGE)
        # chunks are trimmed and small budgets cut inside words: compare without whitespace
        assert "".join("".join(c.text for c in chunks).split()) == "".join(extracted.text.split())
        for c in chunks:
            assert c.text == extracted.text[c.metadata["text_start"] : c.metadata["text_end"]]
            # each text run's source span unescapes to its text (whitespace aside)
            runs = " ".join(html.unescape(SAVED_PAGE[a:b]) for a, b in c.metadata["source_spans"])
            assert "".join(runs.split()) == "".join(c.text.split()), \
                f"budget {budget}: {c.text!r} vs its source spans {runs!r}"
            assert not any(word in c.text for word in BOILERPLATE)
    headings = {c.metadata["heading"] for c in HTMLChunker(8).chunk("post", SAVED_PAGE)}
    assert "Tuning BM25 > Defaults" in headings


def test_main_named_only_in_a_comment_or_script_keeps_the_page() -> None:
    page = "<!-- <main> was here --><script>x = '<main>'</script><div><p>Body text.</p></div><nav>Menu</nav>"
    assert HTMLText(page, drop_boilerplate=True).text == "Body text."


def test_header_and_footer_of_a_section_are_its_own() -> None:
    page = ("<header>Site name</header><section><header><h2>Part</h2></header><p>Text.</p>"
            "<footer>Part footer</footer></section><footer>Site footer</footer>")
    assert HTMLText(page, drop_boilerplate=True).text.splitlines() == ["Part", "Text.", "Part footer"]


def test_tables_keep_their_header_for_reader_and_chunks(tmp_path: Path) -> None:
    rows = "".join(f"<tr><td>term{i}</td><td>{i}.5</td></tr>" for i in range(40))
    page = f"<h1>Weights</h1><table><thead><tr><th>term</th><th>weight</th></tr></thead><tbody>{rows}</tbody></table>"
    (tmp_path / "weights.html").write_text(page, encoding="utf-8")
    (doc,) = read_documents(tmp_path)
    (table,) = doc.metadata["tables"]
    assert table["header"] == ["term", "weight"] and table["rows"] == 40
    assert doc.text[table["start"] : table["end"]].splitlines()[:2] == ["term weight", "term0 0.5"]
    assert doc.text[table["start"] : table["end"]].splitlines()[-1] == "term39 39.5"
    chunks = HTMLChunker(20).chunk("weights", page)
    later = [c for c in chunks if "term39" in c.text or "term20" in c.text]
    assert later and all(c.metadata["table_header"] == "term | weight" for c in later)
    first = next(c for c in chunks if "term weight" in c.text)
    assert "table_header" not in first.metadata  # it holds the header line itself
    # a table without a header row, and one whose first row is data cells, record no header
    assert [t.header for t in HTMLText("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>").tables] \
        == [[]]


def test_a_page_the_rules_would_empty_is_read_whole() -> None:
    # an ASP.NET page wraps its body in one <form>: forms are not boilerplate; a page that is all <nav> stays whole
    assert HTMLText('<form id="aspnetForm"><p>Article text.</p></form>', drop_boilerplate=True).text \
        == "Article text."
    assert HTMLText("<title>Menu</title><nav><a>Home</a> <a>About</a></nav>", drop_boilerplate=True).text \
        == "Menu\nHome About"


def test_a_chunk_inside_a_nested_table_gets_the_enclosing_header() -> None:
    inner = "<table>" + "".join(f"<tr><td>inner{i} cell words</td></tr>" for i in range(30)) + "</table>"
    page = f"<table><tr><th>outer</th><th>col</th></tr><tr><td>{inner}</td><td>x</td></tr></table>"
    chunks = HTMLChunker(10).chunk("nested", page)
    deep = [c for c in chunks if "inner20" in c.text]
    assert deep and deep[0].metadata["table_header"] == "outer | col"
