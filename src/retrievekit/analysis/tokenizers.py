"""Tokenizers: text -> list of raw tokens.

``standard_tokenize`` follows Lucene's ``StandardTokenizer``: Unicode UAX#29 word boundaries (letters and digits
joined through mid-word punctuation such as ``can't``, ``U.S.A``, ``3.14``, ``1,000``, ``a_b``), single-character
tokens for ideographs and Hiragana, runs for Katakana and South-East-Asian scripts, punctuation dropped, tokens
longer than 255 characters split into 255-character pieces.
"""

from __future__ import annotations

import re
from typing import Any

import regex

MAX_TOKEN_LENGTH = 255

# Word_Break classes of UAX#29, each followed by the Extend/Format/ZWJ characters that WB4 lets it absorb.
_EXT = r"[\p{WB=Extend}\p{WB=Format}\p{WB=ZWJ}]*"
_LETTER = r"[\p{WB=ALetter}\p{WB=Hebrew_Letter}]" + _EXT
_NUMBER = r"\p{WB=Numeric}" + _EXT
_KATAKANA = r"\p{WB=Katakana}" + _EXT
_CONNECT = r"\p{WB=ExtendNumLet}" + _EXT
# Lucene's MidLetterEx / MidNumericEx: the single quote and MidNumLet ('.', U+2019 ...) count for both.
_MID_LETTER = r"[\p{WB=MidLetter}\p{WB=MidNumLet}\p{WB=Single_Quote}]" + _EXT
_MID_NUMBER = r"[\p{WB=MidNum}\p{WB=MidNumLet}\p{WB=Single_Quote}]" + _EXT

_LETTERS = f"{_LETTER}(?:(?:(?:{_CONNECT})*|{_MID_LETTER}){_LETTER})*"
_NUMBERS = f"{_NUMBER}(?:(?:(?:{_CONNECT})*|{_MID_NUMBER}){_NUMBER})*"
_KATAKANAS = f"{_KATAKANA}(?:(?:{_CONNECT})*{_KATAKANA})*"
_BLOCK = f"(?:{_KATAKANAS}|(?:{_LETTERS}|{_NUMBERS})+)"
_WORD = f"(?:{_CONNECT})*{_BLOCK}(?:(?:{_CONNECT})+{_BLOCK})*(?:{_CONNECT})*"
_SOUTH_EAST_ASIAN = r"(?:\p{LB=SA}" + _EXT + ")+"
_IDEOGRAPH = r"[\p{Han}\p{Hiragana}]" + _EXT

# Emoji (Lucene >= 8 emits them as tokens): flags, keycaps, and pictographs with modifiers, presentation
# selectors and zero-width-joiner sequences.
# U+2605 (black star) was Extended_Pictographic in the Unicode version Lucene's grammar was generated from.
_EMOJI_PART = r"[\p{Extended_Pictographic}\u2605][\p{Emoji_Modifier}\uFE0F\p{WB=Extend}]*"
_EMOJI = (
    r"\p{Regional_Indicator}{2}|[0-9#*]\uFE0F?\u20E3"
    + f"|{_EMOJI_PART}(?:\u200D{_EMOJI_PART})*"
)

# The full grammar, needed only when the text holds combining marks or format characters (WB4).
STANDARD_PATTERN = regex.compile(f"{_EMOJI}|{_WORD}|{_SOUTH_EAST_ASIAN}|{_IDEOGRAPH}", regex.V1)
_HAS_EXTEND = regex.compile(r"[\p{WB=Extend}\p{WB=Format}\p{WB=ZWJ}]")


def _flat_pattern(letter: str, number: str, connect: str, mid_letter: str, mid_number: str) -> str:
    """The same grammar without WB4, written per character: a run of letters, digits and connectors
    (``_``) that starts with a letter or digit, where a mid-word character joins two letters or two digits."""
    word_char = f"[{letter}{number}{connect}]"
    return (
        f"[{connect}]*[{letter}{number}]{word_char}*"
        f"(?:(?:(?<=[{letter}])[{mid_letter}](?=[{letter}])|(?<=[{number}])[{mid_number}](?=[{number}])){word_char}+)*"
    )


# Fast paths: most text is ASCII (stdlib ``re``), and most non-ASCII text has no combining marks.
_ASCII_PATTERN = re.compile(_flat_pattern("A-Za-z", "0-9", "_", ":.'", ",;.'"))
_UNICODE_PATTERN = regex.compile(
    _EMOJI
    + "|"
    + _flat_pattern(
        r"\p{WB=ALetter}\p{WB=Hebrew_Letter}",
        r"\p{WB=Numeric}",
        r"\p{WB=ExtendNumLet}",
        r"\p{WB=MidLetter}\p{WB=MidNumLet}\p{WB=Single_Quote}",
        r"\p{WB=MidNum}\p{WB=MidNumLet}\p{WB=Single_Quote}",
    )
    + r"|\p{WB=ExtendNumLet}*\p{WB=Katakana}(?:\p{WB=ExtendNumLet}*\p{WB=Katakana})*\p{WB=ExtendNumLet}*"
    + r"|\p{LB=SA}+|[\p{Han}\p{Hiragana}]",
    regex.V1,
)


# Non-ASCII mid-word characters of UAX#29 (Unicode 14): MidLetter, MidNum, MidNumLet.
_MID_LETTER_CHARS = ":\u00b7\u0387\u055f\u05f4\u2027\ufe13\ufe55\uff1a"
_MID_NUMBER_CHARS = ",;\u037e\u0589\u060c\u060d\u066c\u07f8\u2044\ufe10\ufe14\ufe50\ufe54\uff0c\uff1b"
_MID_BOTH_CHARS = ".'\u2018\u2019\u2024\ufe52\uff07\uff0e"
# The flat grammar over Python's own Unicode classes (letters [^\W\d_], digits \d): stdlib ``re`` speed.
_PYTHON_PATTERN = re.compile(
    r"_*[^\W_]\w*"
    rf"(?:(?:(?<=[^\W\d_])[{_MID_LETTER_CHARS}{_MID_BOTH_CHARS}](?=[^\W\d_])"
    rf"|(?<=\d)[{_MID_NUMBER_CHARS}{_MID_BOTH_CHARS}](?=\d))\w+)*"
)
_PY_LETTER = re.compile(r"[^\W\d_]")
_PY_DIGIT = re.compile(r"\d")


class _SafeCharacters(dict):
    """character -> True when Python's classes give it the same word-break role as UAX#29 and it needs nothing
    beyond the flat grammar (no ideograph, kana, South-East-Asian letter, emoji or combining mark). Filled
    lazily, one entry per distinct character seen."""

    _FULL_GRAMMAR = regex.compile(
        r"[\p{Han}\p{Hiragana}\p{WB=Katakana}\p{LB=SA}\p{WB=Extend}\p{WB=Format}\p{WB=ZWJ}"
        r"\p{Extended_Pictographic}\p{Regional_Indicator}\u2605\p{WB=Hebrew_Letter}]"
    )
    _ROLES = (
        ("a", regex.compile(r"\p{WB=ALetter}")),
        ("0", regex.compile(r"\p{WB=Numeric}")),
        ("_", regex.compile(r"\p{WB=ExtendNumLet}")),
        (":", regex.compile(r"\p{WB=MidLetter}")),
        (",", regex.compile(r"\p{WB=MidNum}")),
        (".", regex.compile(r"[\p{WB=MidNumLet}\p{WB=Single_Quote}]")),
    )

    def __missing__(self, ch: str) -> bool:
        if self._FULL_GRAMMAR.match(ch):
            safe = False
        else:
            unicode_role = next((role for role, p in self._ROLES if p.match(ch)), " ")
            safe = unicode_role == _python_role(ch)
        self[ch] = safe
        return safe


def _python_role(ch: str) -> str:
    if ch == "_":
        return "_"
    if _PY_LETTER.match(ch):
        return "a"
    if _PY_DIGIT.match(ch):
        return "0"
    if ch in _MID_LETTER_CHARS:
        return ":"
    if ch in _MID_NUMBER_CHARS:
        return ","
    if ch in _MID_BOTH_CHARS:
        return "."
    return " "


_SAFE = _SafeCharacters()


def _split_long(tokens: list[str]) -> list[str]:
    out: list[str] = []
    for token in tokens:
        if len(token) <= MAX_TOKEN_LENGTH:
            out.append(token)
        else:
            out.extend(token[i : i + MAX_TOKEN_LENGTH] for i in range(0, len(token), MAX_TOKEN_LENGTH))
    return out


def _standard_pattern(text: str) -> Any:
    """The cheapest pattern that tokenizes ``text`` exactly like the full grammar."""
    if text.isascii():
        return _ASCII_PATTERN
    if all(map(_SAFE.__getitem__, set(text))):
        return _PYTHON_PATTERN
    if _HAS_EXTEND.search(text) is None:
        return _UNICODE_PATTERN
    return STANDARD_PATTERN


def standard_tokenize(text: str) -> list[str]:
    """Split ``text`` into words the way Lucene's StandardTokenizer does (case is preserved)."""
    tokens: list[str] = _standard_pattern(text).findall(text)
    if tokens and max(map(len, tokens)) > MAX_TOKEN_LENGTH:
        tokens = _split_long(tokens)
    return tokens


_WHITESPACE = regex.compile(r"\S+")


def whitespace_tokenize(text: str) -> list[str]:
    """Split on whitespace only; punctuation stays part of the token."""
    return _WHITESPACE.findall(text)


_IDENTIFIER = regex.compile(r"[\p{L}\p{N}_]+")
# camelCase / PascalCase / ACRONYMWord / digits boundaries inside an identifier.
_IDENTIFIER_PART = regex.compile(r"\p{Lu}+(?=\p{Lu}\p{Ll})|\p{Lu}?\p{Ll}+|\p{Lu}+|\p{N}+|[\p{L}\p{N}]+")


def identifier_tokenize(text: str) -> list[str]:
    """Tokenizer for source code: identifiers plus their snake_case / camelCase parts.

    ``parseHTTPResponse_v2`` gives ``parseHTTPResponse_v2, parse, HTTP, Response, v, 2`` so that both the whole
    identifier and its words can match.
    """
    out: list[str] = []
    for ident in _IDENTIFIER.findall(text):
        parts = [p for chunk in ident.split("_") if chunk for p in _IDENTIFIER_PART.findall(chunk)]
        if not parts:
            continue
        if len(parts) != 1 or parts[0] != ident:
            out.append(ident)
        out.extend(parts)
    return out


# A code identifier: letters with their combining marks (Python allows them: ``नमस्ते``), digits and connector
# punctuation (``_``); operators and other punctuation separate identifiers.
_CODE_IDENTIFIER = regex.compile(r"[\p{L}\p{M}\p{N}\p{Pc}]+")
_CODE_CONNECTOR = regex.compile(r"\p{Pc}+")
# The parts of one connector-free chunk, each letter with the marks that follow it: an upper-case run that ends
# where a capitalised word starts (``HTTP|Response``), a capitalised or lower-case word, an upper-case run, digits,
# a run of uncased letters (CJK, Devanagari ...).
_UPPER = r"\p{Lu}\p{M}*"
_LOWER = r"\p{Ll}\p{M}*"
_CODE_PART = regex.compile(
    f"(?:{_UPPER})+(?={_UPPER}{_LOWER})|(?:{_UPPER})?(?:{_LOWER})+|(?:{_UPPER})+|\\p{{N}}+"
    r"|(?:[\p{Lo}\p{Lm}\p{Lt}]\p{M}*)+"
)


def code_tokenize(text: str) -> list[str]:
    """Tokenizer for source code and questions about it: each identifier, then its parts when it has several.

    ``getHTTPResponse2`` gives ``getHTTPResponse2, get, HTTP, Response, 2``; ``__init__`` gives ``__init__, init``;
    operators and punctuation separate tokens and are dropped (``a->b``: ``a, b``). Unlike
    ``identifier_tokenize``, combining marks stay inside identifiers and parts, and tokens longer than 255
    characters (a base64 blob in a string) are cut into 255-character pieces like the standard tokenizer's.
    """
    out: list[str] = []
    part_pattern = _CODE_PART
    for ident in _CODE_IDENTIFIER.findall(text):
        if ident.isascii() and ident.isalpha() and (ident.islower() or ident[1:].islower()):
            out.append(ident)  # the common case, one part: "value", "Value"
            continue
        parts = [p for chunk in _CODE_CONNECTOR.split(ident) if chunk for p in part_pattern.findall(chunk)]
        if not parts:
            continue
        if len(parts) != 1 or parts[0] != ident:
            out.append(ident)
        out.extend(parts)
    if out and max(map(len, out)) > MAX_TOKEN_LENGTH:
        out = _split_long(out)
    return out


def code_token_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each identifier ``code_tokenize`` reads in ``text``: its parts' terms belong to that span."""
    return [m.span() for m in _CODE_IDENTIFIER.finditer(text)]


def standard_token_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of ``standard_tokenize``'s tokens in ``text`` (before long-token splitting)."""
    return [m.span() for m in _standard_pattern(text).finditer(text)]


def whitespace_token_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _WHITESPACE.finditer(text)]


def identifier_token_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _IDENTIFIER.finditer(text)]
