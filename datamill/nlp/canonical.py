"""Canonical forms of a sample's content: its normalized hash and its search text.

Two samples are *exact duplicates* when their `normalized_hash` is equal: the same JSON once
object keys are sorted, integral floats written as integers, and every string folded by
`fold_string`. Folding erases presentation only, never meaning:

- Unicode NFKC (full-width letters, ligatures, non-breaking spaces fold to their plain
  forms), then case folding (``"Straße"`` and ``"STRASSE"`` agree), then NFKC again, as
  Unicode's NFKC_Casefold does;
- typographic quotes and dashes become ASCII ``'``, ``"`` and ``-``; soft hyphens,
  zero-width characters and byte-order marks are dropped;
- runs of whitespace (line breaks and tabs included) become one space; the ends are trimmed.

Other punctuation is kept: it can carry meaning ("Let's eat, grandma"), and in JSON, code or
numbers it is content; texts that differ by a comma are near-duplicates, which
`datamill.nlp.dedup` catches. The samples store, the generation engine and the near-duplicate
index all dedup with this hash, so it must never change for content already stored (a
change needs a migration that rehashes every sample).

`search_text` is what full-text search indexes, on SQLite and PostgreSQL alike: the words of
the content's string and number values, in document order, NFKC-normalized and case
folded. Each word is a run of letters and digits, so both stores' tokenizers split it the
same way and a query matches the same samples on both (`search_words` folds a query
likewise).
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

import orjson

# A word: letters and digits (underscores are punctuation, as in both stores' tokenizers).
_WORD = re.compile(r"[^\W_]+")
_TYPOGRAPHY = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u00b4\u0060", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
        **dict.fromkeys("\u00ad\u200b\u200c\u200d\u2060\ufeff"),  # invisible: dropped
    }
)
# Longer runs are encoded data rather than words; PostgreSQL ignores words over 2047 bytes.
MAX_WORD_CHARS = 256
# PostgreSQL records word positions up to 16383: past that a phrase cannot be matched there,
# so the index of both stores stops before it.
MAX_SEARCH_WORDS = 16_000


def canonical_json(content: Any) -> bytes:
    """``content`` as canonical JSON bytes: sorted keys, no spaces, folded strings."""
    return orjson.dumps(_canonical(content), option=orjson.OPT_SORT_KEYS)


def normalized_hash(content: Any) -> str:
    """The SHA-256 (hex) of `canonical_json`: equal for exact duplicates."""
    return hashlib.sha256(canonical_json(content)).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, str):
        return fold_string(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        # Past 64 bits orjson cannot write an integer; its parser reads one as a float.
        return value if -(2**63) <= value < 2**64 else float(value)
    if isinstance(value, float):
        # 2.0 and 2 are the same JSON number to every reader that matters.
        return int(value) if math.isfinite(value) and value.is_integer() else value
    if isinstance(value, dict):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def fold_string(value: str) -> str:
    """A string as exact-duplicate detection sees it (see the module docstring)."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())
    return " ".join(folded.translate(_TYPOGRAPHY).split())


def search_words(value: str) -> list[str]:
    """The words of ``value`` as the search index holds them (NFKC, case folded)."""
    folded = unicodedata.normalize("NFKC", value).casefold()
    return [word for word in _WORD.findall(folded) if len(word) <= MAX_WORD_CHARS]


def search_text(content: Any) -> str:
    """The indexed text of ``content``: one line of words per string or number value (keys
    are left out: they name fields, every sample of a type has them), at most
    `MAX_SEARCH_WORDS` words in all."""
    lines = []
    budget = MAX_SEARCH_WORDS
    for value in _leaves(content):
        words = search_words(value)[:budget]
        if words:
            lines.append(" ".join(words))
            budget -= len(words)
        if budget <= 0:
            break
    return "\n".join(lines)


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        yield str(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)


def sample_text(content: Any) -> str:
    """The text a sample's length, regexes and embeddings are measured on: its string
    values, in key order, one per line."""
    parts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, dict):
            for key in value:
                walk(value[key])
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif value is not None and not isinstance(value, bool):
            parts.append(str(value))

    walk(content)
    return "\n".join(parts)
