"""``line_snippet``: the run of lines of code with the most query matches, marked, cut, bounded."""

from __future__ import annotations

import time

from retrievekit.analysis import get_analyzer
from retrievekit.analysis.highlight import line_snippet

CODE = get_analyzer("code")
TEXT = "\n".join([f"x_{i} = {i}" for i in range(20)] + ["def retry_backoff(attempt):",
                                                         '    """Wait before a retry."""', "    return 2"] +
                 [f"y_{i} = {i}" for i in range(20)])


def test_the_window_holds_the_matches_with_a_line_of_context() -> None:
    first, lines = line_snippet(TEXT, "retry wait", CODE, lines=4)
    assert first == 19  # one line above the first match
    assert lines == ["x_19 = 19", "def [retry_backoff](attempt):", '    """[Wait] before a [retry]."""', "    return 2"]


def test_no_match_gives_the_first_lines_and_short_text_is_whole() -> None:
    assert line_snippet(TEXT, "nothing", CODE, lines=2) == (0, ["x_0 = 0", "x_1 = 1"])
    assert line_snippet("a = retry()", "retry", CODE, lines=6, style=("<", ">")) == (0, ["a = <retry>()"])
    assert line_snippet(TEXT, "", CODE, lines=1) == (0, ["x_0 = 0"])


def test_long_lines_are_cut_without_half_marks() -> None:
    line = "value = " + "a" * 300 + " retry"
    _, [shown] = line_snippet(line, "retry", CODE, lines=1, width=50)
    assert shown == line[:50] + " …" and "[" not in shown  # the match past the cut is not marked


def test_a_huge_text_is_read_only_up_to_the_scan_limit() -> None:
    huge = "retry = 1\n" + "filler line\n" * 300_000
    started = time.perf_counter()
    first, lines = line_snippet(huge, "retry", CODE, lines=3, max_scan=10_000)
    assert time.perf_counter() - started < 2.0
    assert first == 0 and lines[0] == "[retry] = 1"
