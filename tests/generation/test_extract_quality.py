"""Answers to samples: JSON extraction, schema and quality filters, the judge's score,
prompts, grounding chunks, and sim answers varied enough to survive dedup."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from datamill.generation.extract import ExtractionError, extract_json
from datamill.generation.grounding import chunks_for, split_text
from datamill.generation.prompts import Variation, request_body, sample_prompt, variation
from datamill.generation.quality import Rejection, check_candidate, judge_score
from datamill.generation.spec import GenerationSpec, Quality, RegexRule, SampleType, parse_spec
from datamill.generation.templates import render
from tests.generation.test_spec import EXAMPLE, minimal


def body_for(
    spec: GenerationSpec, sample_type: SampleType, topic: str, chosen: Variation
) -> dict[str, Any]:
    """A request's body, its prompt rendered in this process (as the confined worker does)."""
    item = sample_prompt(sample_type, topic, [], chosen)
    return request_body(spec, sample_type, render(item.source, item.variables, vary=item.vary))


def chat(content: Any = None, *, arguments: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if arguments is not None:
        message["tool_calls"] = [
            {"type": "function", "function": {"name": "f", "arguments": arguments}}
        ]
    return {"choices": [{"index": 0, "message": message}]}


@pytest.mark.parametrize(
    "content",
    [
        '{"a": 1}',
        '  \ufeff{"a": 1}\n',
        'Here it is:\n```json\n{"a": 1}\n```\nHope it helps.',
        '```\n{"a": 1}\n```',
        'Sure! The sample is {"a": 1} as requested.',
        'Not this {broken, but {"a": 1}',
        [{"type": "text", "text": '{"a": '}, {"type": "text", "text": "1}"}],
    ],
)
def test_json_is_found_however_it_is_wrapped(content: Any):
    assert extract_json(chat(content)) == {"a": 1}


def test_tool_call_arguments_win_and_braces_inside_strings_are_skipped():
    assert extract_json(chat("ignored", arguments='{"a": 2}')) == {"a": 2}
    assert extract_json(chat('x {"s": "a } b {", "n": [1]} y')) == {"s": "a } b {", "n": [1]}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"choices": []}, "no choices"),
        (chat(""), "empty"),
        (chat("no json here, sorry"), "no JSON"),
        (chat('{"a": 1'), "no JSON"),
        ({"choices": [{"message": {"content": None, "refusal": "I can't"}}]}, "refused"),
        # Read, but too deep to store (orjson writes 255 levels): a rejection, not a crash.
        (chat('{"a": ' + "[" * 300 + "]" * 300 + "}"), "more than 128 levels deep"),
        (chat("", arguments="[" * 200 + "]" * 200), "more than 128 levels deep"),
    ],
)
def test_no_json(body: dict[str, Any], words: str):
    with pytest.raises(ExtractionError, match=words):
        extract_json(body)


SCHEMA = {
    "type": "object",
    "required": ["text", "level"],
    "properties": {"text": {"type": "string"}, "level": {"enum": ["EU", "low"]}},
}


@pytest.mark.parametrize(
    ("content", "quality", "reason"),
    [
        ("nothing", Quality(), Rejection.unparseable),
        ("[1, 2]", Quality(), Rejection.schema),
        ('{"text": "x"}', Quality(), Rejection.schema),
        ('{"text": "x", "level": "eu"}', Quality(), Rejection.schema),
        ('{"text": "short", "level": "EU"}', Quality(min_chars=20), Rejection.too_short),
        ('{"text": "long enough", "level": "EU"}', Quality(max_chars=5), Rejection.too_long),
        (
            '{"text": "As an AI model I", "level": "EU"}',
            Quality(regex=[RegexRule(pattern="(?i)as an ai", must_match=False)]),
            Rejection.regex,
        ),
        (
            '{"text": "plain", "level": "EU"}',
            Quality(regex=[RegexRule(pattern="^P", field="text")]),
            Rejection.regex,
        ),
        (
            '{"text": "Plain", "level": "EU"}',
            Quality(regex=[RegexRule(pattern="^P", field="text")]),
            None,
        ),
    ],
)
def test_filters(content: str, quality: Quality, reason: Rejection | None):
    verdict = check_candidate(chat(content), SCHEMA, quality)
    assert verdict.reason == reason, verdict.detail
    assert (verdict.sample is None) == (reason is not None)


def test_judge_scores():
    assert judge_score(chat('{"score": 7.5, "reason": "ok"}')) == (7.5, "ok")
    assert judge_score(chat('{"score": true}'))[0] is None
    assert judge_score(chat("no"))[0] is None


def test_grounding_chunks_cut_at_boundaries_and_rotate():
    text = " ".join(f"Sentence number {n} ends here." for n in range(100))
    pieces = split_text(text, 200)
    assert all(len(p) <= 200 for p in pieces)
    assert all(p.endswith(".") for p in pieces[:-1])
    assert " ".join(pieces) == text
    chunks = list(range(10))
    seen = [tuple(chunks_for(chunks, 2, cell="c", index=i)) for i in range(5)]  # type: ignore[arg-type]
    assert len(set(seen)) == 5
    assert len({c for pair in seen for c in pair}) == 10


def test_prompts_render_variables_and_differ_per_request():
    spec = parse_spec(minimal())
    sample_type = spec.sample_types[0]
    bodies = [body_for(spec, sample_type, "a", variation("a|qa", i)) for i in range(50)]
    prompts = {b["messages"][-1]["content"] for b in bodies}
    assert len(prompts) == 50
    assert all(p.startswith("Ask about a") for p in prompts)
    assert bodies[0]["response_format"]["json_schema"]["schema"] == sample_type.output_schema
    assert body_for(spec, sample_type, "a", variation("a|qa", 3)) == bodies[3]


def test_sim_answers_to_the_example_are_valid_and_not_near_duplicates():
    from datamill.generation.spec import read_spec_file
    from datamill.nlp.canonical import sample_text
    from datamill.nlp.dedup import NearDuplicateIndex
    from datamill.providers.sim.provider import _chat_answer

    spec, _ = read_spec_file(EXAMPLE)
    assert spec.topics.items is not None
    texts = []
    for topic in spec.topics.items[:3]:
        for sample_type in spec.sample_types:
            for index in range(8):
                body = body_for(
                    spec, sample_type, topic, variation(f"{topic}|{sample_type.name}", index)
                )
                seed = hash(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
                answer, _ = _chat_answer(body, random.Random(seed))
                verdict = check_candidate(
                    answer, sample_type.output_schema, spec.quality_for(sample_type)
                )
                assert verdict.reason in (None, Rejection.too_short), verdict.detail
                if verdict.sample is not None:
                    texts.append(sample_text(verdict.sample))
    assert len(texts) >= 90
    matches = NearDuplicateIndex().check_and_add_many(texts, [str(i) for i in range(len(texts))])
    assert sum(m is not None for m in matches) == 0
