"""BM25 terms from text: words stemmed and accent-folded, code identifiers split, CJK text as character bigrams.

`terms(text)` is what the knowledge index stores and searches with (`TOKENIZER` names this scheme in the
index, so a change of scheme rebuilds BM25). `legacy_terms` is bm25s's own tokenizer as the index used it
before, kept so bench/retrieval.py can show both side by side.

Why each step (measured with bench/retrieval.py):

- stemming (Snowball English through PyStemmer): "refunds"/"refunded", "compress"/"compression" meet;
- accent folding: "café" matches "cafe" (NFKD, then combining marks U+0300-U+036F dropped);
- identifiers are kept whole and split into parts: `dict.setdefault` gives `dict.setdefault`, `dict`,
  `setdefault`; `max_line_length` gives the whole and `max`, `line`, `length`; `camelCase` gives
  `camelcase`, `camel`, `case` — a question names either form;
- CJK: Chinese and Japanese have no spaces, so a regex word is a whole clause and nothing matches. Runs of
  Han, kana and Hangul become overlapping character bigrams (a lone character stays a unigram), as
  Lucene's CJKAnalyzer does. Chosen over a dictionary segmenter such as jieba: no dictionary to load
  (jieba takes about a second and a 5 MB dictionary on first use, and has had no release since 2020), it
  works the same for Japanese and Korean, and a query's words are always found inside a document's
  bigrams whatever the segmenter would have cut.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

TOKENIZER = "terms-v2"  # stored with the BM25 index: a different scheme means a rebuild
LEGACY_TOKENIZER = "bm25s-words"

_CJK = (
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # Han (extension A, unified, compatibility)
    "\uac00-\ud7af"  # Hangul syllables
)
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W{_CJK}]+(?:[.\-:/][^\W{_CJK}]+)*")
_SEPARATORS = re.compile(r"[._\-:/]+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_CJK_RUN = re.compile(rf"[{_CJK}]+")
_ACCENTS = re.compile("[\u0300-\u036f]")
_LEGACY = re.compile(r"(?u)\b\w\w+\b")  # bm25s.tokenize's default pattern


@lru_cache(maxsize=1)
def _stemmer() -> object:
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return _stemmer().stemWord(word)  # type: ignore[attr-defined]


def _unaccent(text: str) -> str:
    """Accents dropped, case kept (camelCase splitting needs the case)."""
    return _ACCENTS.sub("", unicodedata.normalize("NFKD", text))


def fold(text: str) -> str:
    """Compatibility forms unified (full-width letters, ligatures), accents dropped, case folded."""
    return _unaccent(text).casefold()


def cjk_terms(run: str) -> list[str]:
    """A run of CJK characters as overlapping bigrams (a lone character stays itself)."""
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def _word_terms(token: str) -> list[str]:
    """A word or identifier: the whole (folded) and, when it has parts, each part, words stemmed."""
    whole = fold(token).strip("_.-:/")
    parts = [p.casefold() for piece in _SEPARATORS.split(_unaccent(token)) for p in _CAMEL.findall(piece)]
    out: list[str] = []
    if (len(parts) > 1 or parts != [whole]) and len(whole) > 1:
        out.append(whole)
    for part in parts:
        if part.isdigit():
            out.append(part)
        elif len(part) > 1:
            out.append(_stem(part))
    return out


def terms(text: str) -> list[str]:
    """The BM25 terms of a text (see the module docstring)."""
    out: list[str] = []
    for token in _TOKEN.findall(unicodedata.normalize("NFKC", text)):
        if _CJK_RUN.fullmatch(token):
            out.extend(cjk_terms(token))
        else:
            out.extend(_word_terms(token))
    return out


def legacy_terms(text: str) -> list[str]:
    """bm25s.tokenize's terms without stopwords or stemming: lower-cased regex words of 2+ characters."""
    return _LEGACY.findall(text.lower())


TOKENIZERS = {TOKENIZER: terms, LEGACY_TOKENIZER: legacy_terms}
