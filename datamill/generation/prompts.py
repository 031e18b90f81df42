"""Prompts rendered from a spec's Jinja templates, and the request bodies that carry them.

Templates are rendered bounded, apart from the event loop (`templates`, `confined`): this
module says what each template sees and builds the request around the rendered prompt. A
sample type's template sees:

- ``topic``, ``sample_type`` (its name), ``description`` (the type's);
- ``examples`` (the type's few-shot samples as JSON text) and ``examples_data`` (as objects);
- ``grounding`` (the chunks given to this request: each with ``document``, ``index``, ``text``);
- ``variation``: ``index`` (the request's number within its cell), ``seed``, and, picked by
  the seed, ``angle``, ``audience`` and ``parties`` (two invented names), so repeated
  requests of a cell differ (use ``parties`` or ``seed``: angle x audience repeats). A template that
  does not mention ``variation`` gets one line appended that does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from datamill.generation.confined import RenderItem
from datamill.generation.grounding import Chunk
from datamill.generation.spec import GenerationSpec, SampleType
from datamill.generation.templates import TemplateProblem

__all__ = ["TemplateProblem", "judge_body", "judge_prompt", "request_body", "sample_prompt"]

_ANGLES = (
    "an unusual fact pattern",
    "a common misunderstanding",
    "a recent practical situation",
    "a small business",
    "an individual with limited means",
    "a large organisation",
    "a cross-border element",
    "a dispute that settles",
    "a dispute that goes to trial",
    "an edge case of the rule",
    "a procedural complication",
    "conflicting evidence",
    "a sympathetic party who loses",
    "a technical violation with small harm",
    "a deadline that was missed",
    "a public authority as a party",
)
_AUDIENCES = (
    "a first-year student",
    "a practitioner",
    "a judge",
    "a client with no legal training",
    "a compliance officer",
    "a journalist",
    "an exam candidate",
    "a paralegal",
)
_FIRST_NAMES = (
    "Ada",
    "Amir",
    "Ana",
    "Bea",
    "Bruno",
    "Chen",
    "Clara",
    "Dara",
    "Dev",
    "Elena",
    "Emil",
    "Farah",
    "Felix",
    "Gia",
    "Hana",
    "Hugo",
    "Ines",
    "Ivan",
    "Jada",
    "Jonas",
    "Kai",
    "Kofi",
    "Lena",
    "Luca",
    "Maya",
    "Milo",
    "Nadia",
    "Nils",
    "Omar",
    "Olga",
    "Pia",
    "Quinn",
    "Rafael",
    "Rosa",
    "Sami",
    "Sofia",
    "Tariq",
    "Tessa",
    "Uma",
    "Victor",
    "Wen",
    "Xavier",
    "Yara",
    "Yusuf",
    "Zane",
    "Zoe",
)
_LAST_NAMES = (
    "Abara",
    "Berg",
    "Costa",
    "Dahl",
    "Eze",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jansen",
    "Kowalski",
    "Laine",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quist",
    "Rossi",
    "Santos",
    "Tanaka",
    "Ueda",
    "Varga",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zimmer",
    "Adler",
    "Brandt",
    "Castillo",
    "Duarte",
    "Engel",
    "Falk",
    "Gupta",
    "Horvat",
    "Iqbal",
    "Juarez",
    "Keller",
    "Lund",
    "Mensah",
    "Novak",
    "Ortiz",
    "Park",
    "Reyes",
    "Silva",
    "Torres",
    "Vance",
    "Wolff",
)


@dataclass(frozen=True, slots=True)
class Variation:
    index: int
    seed: int
    angle: str
    audience: str
    parties: str  # two invented names: prompts that use them differ from request to request


def variation(cell: str, index: int, job_seed: str = "") -> Variation:
    """Request ``index`` of ``cell``'s variation: a function of them (a resumed job renders
    the same prompts), drawn from about 10^13 combinations."""
    digest = hashlib.sha256(f"{job_seed}|{cell}|{index}".encode()).digest()
    seed = int.from_bytes(digest[:8], "big")
    picks = [int.from_bytes(digest[8 + 2 * k : 10 + 2 * k], "big") for k in range(4)]
    first = (
        f"{_FIRST_NAMES[picks[0] % len(_FIRST_NAMES)]} {_LAST_NAMES[picks[1] % len(_LAST_NAMES)]}"
    )
    second = (
        f"{_FIRST_NAMES[picks[2] % len(_FIRST_NAMES)]} {_LAST_NAMES[picks[3] % len(_LAST_NAMES)]}"
    )
    return Variation(
        index,
        seed,
        _ANGLES[seed % len(_ANGLES)],
        _AUDIENCES[(seed >> 16) % len(_AUDIENCES)],
        f"{first} and {second}",
    )


def template_variables(
    sample_type: SampleType, topic: str, chunks: list[Chunk], chosen: Variation
) -> dict[str, Any]:
    return {
        "topic": topic,
        "sample_type": sample_type.name,
        "description": sample_type.description or "",
        "examples": [orjson.dumps(e).decode() for e in sample_type.examples],
        "examples_data": sample_type.examples,
        "grounding": [{"document": c.document, "index": c.index, "text": c.text} for c in chunks],
        "variation": {
            "index": chosen.index,
            "seed": chosen.seed,
            "angle": chosen.angle,
            "audience": chosen.audience,
            "parties": chosen.parties,
        },
    }


def sample_prompt(
    sample_type: SampleType, topic: str, chunks: list[Chunk], chosen: Variation
) -> RenderItem:
    """The render of one request's prompt for a (topic, sample type) cell."""
    variables = template_variables(sample_type, topic, chunks, chosen)
    return RenderItem(sample_type.template, variables, vary=True)


def request_body(spec: GenerationSpec, sample_type: SampleType, prompt: str) -> dict[str, Any]:
    """The chat completion body of one request, around its rendered ``prompt``."""
    messages: list[dict[str, Any]] = []
    if sample_type.system_prompt:
        messages.append({"role": "system", "content": sample_type.system_prompt})
    messages.append({"role": "user", "content": prompt})
    body: dict[str, Any] = {"model": spec.model, "messages": messages, **spec.sampling}
    if spec.response_format == "json_schema":
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": _schema_name(sample_type.name),
                "schema": sample_type.output_schema,
            },
        }
    elif spec.response_format == "json_object":
        body["response_format"] = {"type": "json_object"}
    return body


def judge_prompt(
    spec: GenerationSpec, sample_type: SampleType, topic: str, sample: dict[str, Any]
) -> RenderItem:
    """The render of the judge's prompt for one candidate."""
    judge = spec.quality_for(sample_type).judge
    assert judge is not None
    variables = {
        "sample": orjson.dumps(sample, option=orjson.OPT_INDENT_2).decode(),
        "sample_data": sample,
        "topic": topic,
        "sample_type": sample_type.name,
        "max_score": judge.max_score,
        # The judge's prompt is one request per sample: no variation wanted.
        "variation": {},
    }
    return RenderItem(judge.prompt, variables)


def judge_body(spec: GenerationSpec, sample_type: SampleType, prompt: str) -> dict[str, Any]:
    """The request asking the quality judge to score one candidate, its prompt rendered."""
    judge = spec.quality_for(sample_type).judge
    assert judge is not None
    messages: list[dict[str, Any]] = []
    if judge.system_prompt:
        messages.append({"role": "system", "content": judge.system_prompt})
    messages.append({"role": "user", "content": prompt})
    schema = {
        "type": "object",
        "properties": {
            "score": {"type": "number", "minimum": 0, "maximum": judge.max_score},
            "reason": {"type": "string"},
        },
        "required": ["score", "reason"],
        "additionalProperties": False,
    }
    return {
        "model": judge.model or spec.model,
        "messages": messages,
        "temperature": 0,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "judgement", "schema": schema},
        },
    }


def _schema_name(name: str) -> str:
    # OpenAI's schema names: letters, digits, underscores and dashes, 64 at most.
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)
    return cleaned[:64] or "sample"
