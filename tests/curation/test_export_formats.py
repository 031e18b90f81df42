"""The export formats' pure parts: split parsing and assignment, the data-preparation
guide's checks and the token bound, the dataset card (read by Hugging Face `datasets` when
it is installed)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from datamill.curation.formats.card import dataset_card
from datamill.curation.formats.checks import could_exceed, format_errors, warnings
from datamill.curation.formats.splits import SplitAssigner, parse_splits
from datamill.errors import InvalidRequest
from datamill.nlp.tokens import estimate_message_tokens

TEXTS = [
    "plain English words, and some punctuation!",
    "😀🎉🚀" * 40,
    "数据工厂" * 50,
    "x" * 5000,
    '"}},{"' * 300,
    "camelCaseIdentifiersEverywhere " * 100,
    "Ünïcödé àccents " * 80,
    "1234567890" * 100,
    "\n\n  \t" * 200,
]


def test_splits_parse_and_assign_by_seed_and_id():
    splits = parse_splits(" train=0.8, validation=0.1 ,test=0.1")
    ids = [f"smp_{n:024x}" for n in range(20_000)]

    first = [SplitAssigner(splits, 7).split_of(i) for i in ids]
    second = [SplitAssigner(splits, 7).split_of(i) for i in ids]
    other = [SplitAssigner(splits, 8).split_of(i) for i in ids]

    assert splits.names == ("train", "validation", "test")
    assert str(splits) == "train=0.8,validation=0.1,test=0.1"
    assert first == second
    assert first != other
    counts = Counter(first)
    assert 0.78 < counts["train"] / len(ids) < 0.82
    assert 0.08 < counts["test"] / len(ids) < 0.12
    assert {SplitAssigner(parse_splits("all=1"), 3).split_of(i) for i in ids} == {"all"}


@pytest.mark.parametrize(
    "text",
    ["", "train", "train=", "train=0", "train=1.5", "train=nan,test=0.5", "1st=1", "a=0.5,b=0.6"],
)
def test_bad_splits_are_invalid_requests(text: str):
    with pytest.raises(InvalidRequest) as raised:
        parse_splits(text, param="--split")

    assert raised.value.param == "--split"


def test_the_guides_format_errors():
    user = {"role": "user", "content": "Hi"}
    answer = {"role": "assistant", "content": "Hello"}
    call = {"role": "assistant", "content": None, "function_call": {"name": "f"}}

    assert format_errors({"messages": [user, answer]}) == []
    assert format_errors({"messages": [user, call, {"role": "function", "content": "1"}]}) == []
    assert format_errors({"messages": [{**answer, "weight": 0}, user, answer]}) == []
    assert format_errors([user]) == ["data_type"]
    assert format_errors({"messages": []}) == ["missing_messages_list"]
    assert format_errors({"messages": "Hi"}) == ["missing_messages_list"]
    assert format_errors({"messages": [{"role": "user"}, answer]}) == [
        "message_missing_key",
        "missing_content",
    ]
    assert format_errors({"messages": [user, {**answer, "content": ["Hello"]}]}) == [
        "missing_content"
    ]
    assert format_errors({"messages": [{"role": "tool", "content": "1"}, answer]}) == [
        "unrecognized_role"
    ]
    assert format_errors({"messages": [user]}) == ["example_missing_assistant_message"]
    assert format_errors({"messages": [user, "Hello"]}) == [
        "message_missing_key",
        "example_missing_assistant_message",
    ]
    assert warnings([answer], tokens=None) == ["missing_system_message", "missing_user_message"]
    assert warnings([{"role": "system", "content": "S"}, user, answer], tokens=20_000) == [
        "over_token_limit"
    ]


@pytest.mark.parametrize("text", TEXTS)
def test_the_token_bound_never_misses_a_long_example(text: str):
    for limit in (50, 500, 5000, 16_385):
        messages = [{"role": "user", "content": text}, {"role": "assistant", "content": text}]
        if not could_exceed(messages, limit):
            assert estimate_message_tokens(messages) <= limit


def test_the_dataset_card_names_non_empty_splits(tmp_path: Path):
    card = dataset_card(
        "faq",
        "Questions and answers.",
        {"train": "train.parquet", "test": "test.parquet"},
        {"train": 3, "test": 0},
        splits="train=0.9,test=0.1",
        seed=7,
    )

    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "train.parquet"}]}
    ]
    assert meta["dataset_info"]["features"][-1] == {"name": "created_at", "dtype": "int64"}
    assert "| test | test.parquet | 0 |" in body
    assert "Questions and answers." in body
