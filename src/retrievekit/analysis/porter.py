"""Lucene's ``PorterStemmer``: Martin Porter's reference C implementation of the Porter (1980) algorithm,
including its two departures from the paper ("bli" -> "ble", "logi" -> "log") and leaving words of one or two
letters alone. Snowball's ``porter`` follows the paper instead and gives different stems for e.g. "sensibly" and
"analogy", which is enough to move BM25 scores away from Anserini/Pyserini's.

Analyzers cache stems per distinct token, so this pure-Python stemmer runs once per vocabulary entry.
"""

from __future__ import annotations

import Stemmer

_VOWELS = frozenset("aeiou")


class _Stemmer:
    __slots__ = ("b", "j", "k")

    def __init__(self, word: str) -> None:
        self.b = list(word)
        self.k = len(word) - 1
        self.j = 0

    def cons(self, i: int) -> bool:
        ch = self.b[i]
        if ch in _VOWELS:
            return False
        if ch == "y":
            return True if i == 0 else not self.cons(i - 1)
        return True

    def m(self) -> int:
        """Number of consonant-vowel sequences in b[0..j]."""
        n = 0
        i = 0
        j = self.j
        while True:
            if i > j:
                return n
            if not self.cons(i):
                break
            i += 1
        i += 1
        while True:
            while True:
                if i > j:
                    return n
                if self.cons(i):
                    break
                i += 1
            i += 1
            n += 1
            while True:
                if i > j:
                    return n
                if not self.cons(i):
                    break
                i += 1
            i += 1

    def vowel_in_stem(self) -> bool:
        return any(not self.cons(i) for i in range(self.j + 1))

    def double_cons(self, j: int) -> bool:
        return j >= 1 and self.b[j] == self.b[j - 1] and self.cons(j)

    def cvc(self, i: int) -> bool:
        if i < 2 or not self.cons(i) or self.cons(i - 1) or not self.cons(i - 2):
            return False
        return self.b[i] not in "wxy"

    def ends(self, s: str) -> bool:
        n = len(s)
        if n > self.k + 1:
            return False
        if "".join(self.b[self.k - n + 1 : self.k + 1]) != s:
            return False
        self.j = self.k - n
        return True

    def set_to(self, s: str) -> None:
        j = self.j
        self.b[j + 1 :] = list(s)
        self.k = j + len(s)

    def r(self, s: str) -> None:
        if self.m() > 0:
            self.set_to(s)

    def step1(self) -> None:
        b = self.b
        if b[self.k] == "s":
            if self.ends("sses"):
                self.k -= 2
            elif self.ends("ies"):
                self.set_to("i")
            elif b[self.k - 1] != "s":
                self.k -= 1
        del b[self.k + 1 :]
        if self.ends("eed"):
            if self.m() > 0:
                self.k -= 1
        elif (self.ends("ed") or self.ends("ing")) and self.vowel_in_stem():
            self.k = self.j
            del b[self.k + 1 :]
            if self.ends("at"):
                self.set_to("ate")
            elif self.ends("bl"):
                self.set_to("ble")
            elif self.ends("iz"):
                self.set_to("ize")
            elif self.double_cons(self.k):
                ch = b[self.k]
                if ch not in "lsz":
                    self.k -= 1
            elif self.m() == 1 and self.cvc(self.k):
                self.set_to("e")
        del b[self.k + 1 :]

    def step2(self) -> None:
        """Step 1c (y -> i) then the double-suffix rules."""
        if self.ends("y") and self.vowel_in_stem():
            self.b[self.k] = "i"
        if self.k == 0:
            return
        rules = _STEP2.get(self.b[self.k - 1])
        if rules:
            for suffix, replacement in rules:
                if self.ends(suffix):
                    self.r(replacement)
                    break
        del self.b[self.k + 1 :]

    def step3(self) -> None:
        rules = _STEP3.get(self.b[self.k])
        if rules:
            for suffix, replacement in rules:
                if self.ends(suffix):
                    self.r(replacement)
                    break
        del self.b[self.k + 1 :]

    def step4(self) -> None:
        if self.k == 0:
            return
        ch = self.b[self.k - 1]
        if ch == "o":
            if self.ends("ion") and self.j >= 0 and self.b[self.j] in "st":
                pass
            elif not self.ends("ou"):
                return
        else:
            for suffix in _STEP4.get(ch, ()):
                if self.ends(suffix):
                    break
            else:
                return
        if self.m() > 1:
            self.k = self.j
        del self.b[self.k + 1 :]

    def step5(self) -> None:
        self.j = self.k
        if self.b[self.k] == "e":
            a = self.m()
            if a > 1 or (a == 1 and not self.cvc(self.k - 1)):
                self.k -= 1
        if self.b[self.k] == "l" and self.double_cons(self.k) and self.m() > 1:
            self.k -= 1
        del self.b[self.k + 1 :]


_STEP2 = {
    "a": (("ational", "ate"), ("tional", "tion")),
    "c": (("enci", "ence"), ("anci", "ance")),
    "e": (("izer", "ize"),),
    "l": (("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous")),
    "o": (("ization", "ize"), ("ation", "ate"), ("ator", "ate")),
    "s": (("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous")),
    "t": (("aliti", "al"), ("iviti", "ive"), ("biliti", "ble")),
    "g": (("logi", "log"),),
}
_STEP3 = {
    "e": (("icate", "ic"), ("ative", ""), ("alize", "al")),
    "i": (("iciti", "ic"),),
    "l": (("ical", "ic"), ("ful", "")),
    "s": (("ness", ""),),
}
_STEP4 = {
    "a": ("al",),
    "c": ("ance", "ence"),
    "e": ("er",),
    "i": ("ic",),
    "l": ("able", "ible"),
    "n": ("ant", "ement", "ment", "ent"),
    "s": ("ism",),
    "t": ("ate", "iti"),
    "u": ("ous",),
    "v": ("ive",),
    "z": ("ize",),
}


_snowball = Stemmer.Stemmer("porter")
_snowball_porter = _snowball.stemWord


def lucene_porter_stem(word: str) -> str:
    """Stem one lowercase word exactly like Lucene's PorterStemFilter.

    Snowball's (compiled) porter agrees with the reference implementation except where the two departures can
    fire — step 2 only sees "bli" or "logi" when the word contains "bl" or "log" — and for 1–2 letter words; only
    those words take the slower pure-Python path."""
    if len(word) <= 2:
        return word
    if "bl" not in word and "log" not in word:
        return _snowball_porter(word)
    return _reference_porter_stem(word)


def lucene_porter_stem_many(words: list[str]) -> list[str]:
    """``lucene_porter_stem`` over a batch: one compiled call for the words Snowball gets right."""
    out = list(words)
    easy = [i for i, w in enumerate(words) if len(w) > 2 and "bl" not in w and "log" not in w]
    for i, stem in zip(easy, _snowball.stemWords([words[i] for i in easy])):
        out[i] = stem
    for i, w in enumerate(words):
        if len(w) > 2 and ("bl" in w or "log" in w):
            out[i] = _reference_porter_stem(w)
    return out


def _reference_porter_stem(word: str) -> str:
    s = _Stemmer(word)
    s.step1()
    if s.k > 0:
        s.step2()
        s.step3()
        s.step4()
        s.step5()
    return "".join(s.b[: s.k + 1])
