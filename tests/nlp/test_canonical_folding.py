"""Exact duplicates: what the normalised form erases, and what it keeps."""

from __future__ import annotations

import pytest

from datamill.nlp.canonical import canonical_json, fold_string, normalized_hash

BASE = "The tenant must pay the rent on the 1st of each month."


@pytest.mark.parametrize(
    "variant",
    [
        "the tenant must pay the rent on the 1st of each month.",  # case
        "THE TENANT MUST PAY THE RENT ON THE 1ST OF EACH MONTH.",
        "  The tenant must\tpay the rent\n\non the 1st of each month.  ",  # whitespace
        "The tenant\u00a0must pay the rent on the 1st of each\u00a0month.",  # NBSP
        "\uff34\uff48\uff45 tenant must pay the rent on the 1st of each month.",  # full-width
        "The ten\u00adant must pay the rent on the 1st of each\u200b month.",  # invisible
    ],
)
def test_presentation_only_variants_hash_alike(variant: str):
    assert normalized_hash(variant) == normalized_hash(BASE)


@pytest.mark.parametrize(
    "different",
    [
        "The tenant must pay the rent on the 2nd of each month.",  # a fact
        "The tenant must pay the rent on the 1st of each month",  # punctuation is kept
        "The tenant must pay rent on the 1st of each month.",  # a word
        "The tenant must not pay the rent on the 1st of each month.",
    ],
)
def test_any_other_change_hashes_differently(different: str):
    assert normalized_hash(different) != normalized_hash(BASE)


def test_typographic_quotes_and_dashes_fold_to_ascii():
    assert (
        fold_string("\u201cDon\u2019t\u201d \u2014 she said \u2013 \u00abno\u00bb")
        == '"don\'t" - she said - "no"'
    )
    assert fold_string("Straße") == fold_string("STRASSE") == "strasse"
    assert fold_string("ﬁle №5") == "file no5"


def test_json_samples_ignore_key_order_and_string_presentation():
    first = {"question": "What is  a LEASE?", "answer": "A contract.", "tags": ["Law", 1, None]}
    second = {"tags": ["law", 1, None], "answer": "a contract.", "question": "what is a lease?"}

    assert canonical_json(first) == canonical_json(second)
    assert normalized_hash(first) == normalized_hash(second)
    assert normalized_hash(first) != normalized_hash({**second, "tags": ["law", 2, None]})
    assert normalized_hash(first) != normalized_hash({**second, "Answer": "a contract."})


def test_the_hash_is_a_sha256_hex_digest():
    digest = normalized_hash(BASE)

    assert len(digest) == 64
    assert int(digest, 16) >= 0
