"""Exact duplicates: a normalised form of a sample and its hash.

Two samples are exact duplicates when their normalised forms are equal. The form is meant to
erase presentation only, never meaning:

- Unicode NFKC (full-width letters, ligatures, non-breaking spaces and the like fold to
  their plain forms), then case folding (``"Straße"`` and ``"STRASSE"`` agree), then NFKC
  again, as Unicode's NFKC_Casefold does;
- typographic variants of quotes and dashes become ASCII ``'``, ``"`` and ``-``; soft
  hyphens, zero-width spaces and byte-order marks are dropped;
- runs of whitespace (line breaks and tabs included) become one space; the ends are trimmed.

Punctuation is otherwise kept: it can carry meaning ("Let's eat, grandma"), and in JSON,
code or numbers it is content. Texts that differ by a comma are near-duplicates, which
`datamill.nlp.dedup` catches lexically.

A JSON sample (a dict or list) is normalised value by value: every string as above, keys as
they are but sorted, numbers, booleans and nulls unchanged, serialised compactly.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

_TYPOGRAPHY = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u00b4\u0060", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
        **dict.fromkeys("\u00ad\u200b\u200c\u200d\u2060\ufeff"),  # invisible: dropped
    }
)


def normalize_text(text: str) -> str:
    """The normalised form of ``text`` (see the module docstring)."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(folded.translate(_TYPOGRAPHY).split())


def normalize_json(value: Any) -> str:
    """The normalised, compact serialisation of a JSON value: strings normalised, keys sorted."""
    return orjson.dumps(_normalize_value(value), option=orjson.OPT_SORT_KEYS).decode()


def _normalize_value(value: Any) -> Any:
    if isinstance(value, str):
        return normalize_text(value)
    if isinstance(value, Mapping):
        return {key: _normalize_value(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [_normalize_value(item) for item in value]
    return value


def normalized_hash(sample: Any) -> str:
    """The sha256 (hex) of a sample's normalised form: equal for exact duplicates.

    A ``str`` is a text sample; anything else is a JSON value (a parsed answer).
    """
    form = normalize_text(sample) if isinstance(sample, str) else normalize_json(sample)
    return hashlib.sha256(form.encode("utf-8")).hexdigest()
