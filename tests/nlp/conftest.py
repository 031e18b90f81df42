"""The embedding model, loaded once per test session and shared by the nlp tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from datamill.nlp.embeddings import Embedder

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    model = Embedder(threads=2)
    model.load()
    return model


@dataclass(frozen=True, slots=True)
class Pair:
    label: str  # "paraphrase" or "distinct"
    how: str  # reword, reorder, synonyms; same-topic, negation, roles, numbers
    domain: str  # legal or general
    a: str
    b: str


def planted_pairs() -> list[Pair]:
    """tests/nlp/data/paraphrases.jsonl: planted paraphrases and distinct pairs."""
    with (DATA / "paraphrases.jsonl").open(encoding="utf-8") as handle:
        return [Pair(**json.loads(line)) for line in handle if line.strip()]
