"""Programming-language keywords, the stop words of the ``code`` analyzer.

Keywords occur in nearly every function of their language, so as index terms they only cost postings; as query
terms they are mostly noise ("def", "elif", "fn"). But some keywords also name what people search for: "convert a
string to an int", "sort a map", "raise an exception", "async http request". Those, ``CONTENT_KEYWORDS``, stay
searchable; ``CODE_STOPWORDS`` is every language's reserved words (lowercased) minus them. Measured with BM25 (MRR@10,
cosqa test / the stdlib code-search benchmark of ``benchmarks/code_search_data.py``, test split): these stop words
0.314 / 0.337, every keyword a stop word 0.290 / 0.324, English stop words only 0.313 / 0.334.

The lists hold each language's reserved words and literal constants (not the contextual keywords that are also
ordinary identifiers, such as TypeScript's ``get``/``set``/``number`` or Python's ``_``).
"""

from __future__ import annotations

#: ``keyword.kwlist`` and the soft keywords of Python 3.12 (written out: another interpreter must give the same set).
PYTHON = frozenset(
    "False None True and as assert async await break class continue def del elif else except finally for from "
    "global if import in is lambda nonlocal not or pass raise return try while with yield case match type".split()
)

#: ECMAScript reserved words (including the strict-mode and future-reserved ones) and TypeScript's reserved types.
JAVASCRIPT = frozenset(
    "await break case catch class const continue debugger default delete do else enum export extends false "
    "finally for function if implements import in instanceof interface let new null package private protected "
    "public return static super switch this throw true try typeof undefined var void while with yield "
    "abstract any boolean declare keyof namespace never readonly unknown".split()
)

GO = frozenset(
    "break case chan const continue default defer else fallthrough for func go goto if import interface map "
    "package range return select struct switch type var nil true false iota".split()
)

#: Strict and reserved keywords (``Self`` lowercases to ``self``).
RUST = frozenset(
    "as async await break const continue crate dyn else enum extern false fn for if impl in let loop match mod "
    "move mut pub ref return self Self static struct super trait true type unsafe use where while "
    "abstract become box do final macro override priv try typeof unsized virtual yield".split()
)

JAVA = frozenset(
    "abstract assert boolean break byte case catch char class const continue default do double else enum extends "
    "final finally float for goto if implements import instanceof int interface long native new package private "
    "protected public return short static strictfp super switch synchronized this throw throws transient try "
    "void volatile while true false null var record sealed permits yield".split()
)

C = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if inline int long "
    "register restrict return short signed sizeof static struct switch typedef union unsigned void volatile "
    "while _Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary _Noreturn _Static_assert _Thread_local "
    "NULL".split()
)

CPP = C | frozenset(
    "alignas alignof and and_eq asm bitand bitor bool catch char8_t char16_t char32_t class compl concept "
    "consteval constexpr constinit const_cast co_await co_return co_yield decltype delete dynamic_cast explicit "
    "export false friend mutable namespace new noexcept not not_eq nullptr operator or or_eq private protected "
    "public reinterpret_cast requires static_assert static_cast template this thread_local throw true try "
    "typeid typename using virtual wchar_t xor xor_eq".split()
)

#: Ruby's reserved words (``defined?`` without its question mark, as the tokenizer sees it).
RUBY = frozenset(
    "__ENCODING__ __LINE__ __FILE__ BEGIN END alias and begin break case class def defined do else elsif end "
    "ensure false for if in module next nil not or redo rescue retry return self super then true undef unless "
    "until when while yield".split()
)

KEYWORDS: dict[str, frozenset[str]] = {
    "python": PYTHON, "javascript": JAVASCRIPT, "go": GO, "rust": RUST, "java": JAVA, "c": C, "cpp": CPP,
    "ruby": RUBY,
}

#: Keywords that are also what a question is about: types and data structures, and the operations or concepts
#: people name in natural language ("delete a file", "throw an exception", "import a module").
CONTENT_KEYWORDS = frozenset(
    # types and data structures
    "int float double char long short byte bool boolean string unsigned signed void "
    "map chan struct union enum interface class type record module package namespace trait concept "
    # control and concurrency people ask about
    "async await yield lambda match case switch select range loop goto retry redo "
    "import export delete new raise throw catch try except finally assert "
    "return break continue default register defined alias next move end begin box "
    # modifiers and declarations that are also ordinary words
    "static const final global private public protected virtual abstract override extends implements native "
    "synchronized volatile mutable explicit friend inline readonly sealed transient unsafe declare requires "
    "ensure never unknown undefined macro debugger template operator sizeof typeof super function".split()
)

#: Every keyword of ``KEYWORDS``, lowercased (the analyzer lowercases before it looks up stop words).
ALL_KEYWORDS = frozenset(word.lower() for words in KEYWORDS.values() for word in words)

CODE_STOPWORDS = ALL_KEYWORDS - CONTENT_KEYWORDS
