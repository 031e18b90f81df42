"""The generation spec: what to generate, how much, on which model, and what counts as good.

A spec is YAML or JSON (`parse_spec`), validated by the pydantic models below with
``extra="forbid"``: an unknown or misspelt key is an error naming its path
(``sample_types[2].schema``), as are templates that do not compile, output schemas that are
not valid JSON Schemas, and regexes that do not compile. `spec_json_schema()` is the JSON
Schema of the models, published at ``GET /api/generation/spec-schema``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import yaml
from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from datamill.errors import InvalidRequest
from datamill.protocol.json_schemas import valid_json_schema
from datamill.protocol.limits import MAX_JSON_DEPTH, json_depth_exceeds, too_deep_message

# `nlp.dedup`'s defaults (a test checks they agree), not imported: that module needs the
# embeddings extra, and a spec is checked without it.
DEFAULT_THRESHOLD = 0.74
DEFAULT_LEXICAL_THRESHOLD = 0.8

# The version of the spec format; stored with each job, bumped when keys change meaning.
SPEC_VERSION = 1
# A spec's size at most, as text or as JSON: its topics and grounding documents fit well
# under it; a spec is not a data set.
MAX_SPEC_BYTES = 1024 * 1024
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,99}$"


def _compiles(source: str) -> str:
    try:
        SandboxedEnvironment().parse(source)
    except TemplateSyntaxError as exc:
        raise ValueError(
            f"the template does not compile (line {exc.lineno}): {exc.message}"
        ) from None
    except RecursionError:
        # Jinja parses by recursion: a hundred nested brackets exhaust the stack.
        raise ValueError("the template nests too deeply to compile") from None
    return source


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeneratedTopics(_Strict):
    """A topic tree asked of a model once, when the job is created (then kept with the
    job): ``depth`` levels under ``root``; its first ``count`` leaves are the topics."""

    root: str = Field(min_length=1, description="what the topics are about")
    count: int = Field(ge=1, le=1000, description="how many topics (the tree's leaves)")
    depth: int = Field(default=1, ge=1, le=3, description="levels of the tree below root")
    model: str | None = Field(default=None, description="default: the spec's model")
    prompt: str | None = Field(default=None, description="Jinja template: root, count, path")


class TopicsFile(_Strict):
    """Topics read from a text file, one a line (relative to the spec's own file)."""

    file: str = Field(min_length=1)


class Topics(_Strict):
    """One of: ``items`` (a list), ``file``, or ``generate`` (a topic tree's leaves)."""

    items: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = None
    file: str | None = None
    generate: GeneratedTopics | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Topics:
        given = [name for name in ("items", "file", "generate") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("give exactly one of items, file or generate")
        if self.items is not None and len(set(self.items)) != len(self.items):
            raise ValueError("topics must be distinct")
        return self


class RegexRule(_Strict):
    """A regex the sample (or one of its fields) must match, or must not."""

    pattern: str = Field(min_length=1)
    field: str | None = Field(default=None, description="a top-level key; default: all text")
    must_match: bool = Field(default=True, description="false: reject samples that match")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regex: {exc}") from None
        except (RecursionError, OverflowError):
            raise ValueError("not a valid regex: it nests too deeply") from None
        return value


class Judge(_Strict):
    """An LLM judge: each candidate that passed the other filters is scored by ``model``
    (a batch of its own); a score under ``threshold`` rejects it."""

    prompt: str = Field(min_length=1, description="Jinja template: sample, topic, sample_type")
    model: str | None = Field(default=None, description="default: the spec's model")
    threshold: float = Field(description="the lowest accepted score")
    max_score: float = Field(default=10, gt=0, description="scores run from 0 to this")
    system_prompt: str | None = None

    _prompt_compiles = field_validator("prompt")(_compiles)

    @model_validator(mode="after")
    def _threshold_in_range(self) -> Judge:
        if not 0 <= self.threshold <= self.max_score:
            raise ValueError(f"threshold must be between 0 and max_score ({self.max_score:g})")
        return self


class Quality(_Strict):
    """Filters every answer passes, in this order, after its JSON is extracted and checked
    against the sample type's schema."""

    min_chars: int | None = Field(default=None, ge=0, description="the sample's text, at least")
    max_chars: int | None = Field(default=None, ge=1, description="the sample's text, at most")
    regex: list[RegexRule] = Field(default_factory=list)
    judge: Judge | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Quality:
        low, high = self.min_chars, self.max_chars
        if low is not None and high is not None and low > high:
            raise ValueError("min_chars is greater than max_chars")
        return self


class SampleType(_Strict):
    """One kind of sample: its prompt, its examples and its output schema."""

    name: str = Field(pattern=_NAME)
    description: str | None = None
    system_prompt: str | None = None
    template: str = Field(min_length=1, description="Jinja template of the user message")
    examples: list[dict[str, Any]] = Field(default_factory=list, description="few-shot samples")
    output_schema: dict[str, Any] = Field(alias="schema", description="JSON Schema of a sample")
    target: int | None = Field(default=None, ge=0, description="this type's total")
    quality: Quality | None = Field(default=None, description="replaces the spec's quality")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    _template_compiles = field_validator("template")(_compiles)

    @field_validator("output_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        return valid_json_schema(value)


class Target(_Strict):
    """How many samples: ``total`` (spread evenly over the cells), ``per_type`` (each
    type's count spread over the topics), or ``per_cell`` (every topic x type cell)."""

    total: int | None = Field(default=None, ge=1, le=10_000_000)
    per_type: int | None = Field(default=None, ge=1, le=10_000_000)
    per_cell: int | None = Field(default=None, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _exactly_one(self) -> Target:
        given = [name for name in ("total", "per_type", "per_cell") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("give exactly one of total, per_type or per_cell")
        return self


class GroundingDocument(_Strict):
    """A document whose chunks are injected into prompts: its ``text`` or a ``file``."""

    id: str | None = None
    text: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> GroundingDocument:
        if (self.text is None) == (self.file is None):
            raise ValueError("give exactly one of text or file")
        return self


class Grounding(_Strict):
    documents: list[GroundingDocument] = Field(min_length=1)
    chunk_chars: int = Field(default=1200, ge=100, le=100_000)
    chunks_per_prompt: int = Field(default=2, ge=1, le=20)


class Dedup(_Strict):
    """Near-duplicate removal (`nlp.dedup`); exact duplicates are always removed."""

    near: bool = True
    threshold: float = Field(default=DEFAULT_THRESHOLD, gt=0, le=1, description="cosine")
    lexical_threshold: float = Field(default=DEFAULT_LEXICAL_THRESHOLD, gt=0, le=1)


class Budget(_Strict):
    """What the job may spend before it stops cleanly (status budget_exhausted)."""

    usd: float | None = Field(default=None, gt=0)
    requests: int | None = Field(default=None, ge=1)
    seconds: float | None = Field(default=None, gt=0, description="running time, all runs")


class Loop(_Strict):
    """How the job issues requests."""

    batch_size: int = Field(default=500, ge=1, le=50_000, description="requests per batch")
    overshoot_margin: float = Field(
        default=0.5, ge=0, le=10, description="in flight per cell: deficit x (1 + this)"
    )
    min_acceptance: float = Field(
        default=0.2, gt=0, le=1, description="floor of the learned acceptance rate"
    )
    max_idle_rounds: int = Field(
        default=10,
        ge=0,
        le=10_000,
        description="rounds' worth of answers in a row without a new sample before the job "
        "stops (budget_exhausted, no_progress); 0: never",
    )


class GenerationSpec(_Strict):
    """A generation spec (``docs/generation.md`` describes every key)."""

    name: str = Field(pattern=_NAME)
    description: str | None = None
    dataset: str | None = Field(default=None, description="dataset name; default: the spec's name")
    model: str = Field(min_length=1, description="model or alias for the samples")
    sampling: dict[str, Any] = Field(
        default_factory=dict, description="request fields: temperature, max_tokens, ..."
    )
    response_format: Literal["json_schema", "json_object", "none"] = "json_schema"
    topics: Topics
    sample_types: list[SampleType] = Field(min_length=1)
    target: Target
    grounding: Grounding | None = None
    quality: Quality = Field(default_factory=Quality)
    dedup: Dedup = Field(default_factory=Dedup)
    budget: Budget = Field(default_factory=Budget)
    loop: Loop = Field(default_factory=Loop)

    @field_validator("sampling")
    @classmethod
    def _sampling_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        owned = {"model", "messages", "response_format", "stream", "n"} & set(value)
        if owned:
            raise ValueError(f"{sorted(owned)[0]!r} is set by the generation job")
        return value

    @model_validator(mode="after")
    def _distinct_types(self) -> GenerationSpec:
        names = [t.name for t in self.sample_types]
        if len(set(names)) != len(names):
            raise ValueError("sample type names must be distinct")
        return self

    @property
    def dataset_name(self) -> str:
        return self.dataset or self.name

    def sample_type(self, name: str) -> SampleType:
        for sample_type in self.sample_types:
            if sample_type.name == name:
                return sample_type
        raise KeyError(name)

    def quality_for(self, sample_type: SampleType) -> Quality:
        return sample_type.quality or self.quality


def _location(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def spec_error(exc: ValidationError, *, param: str = "spec") -> InvalidRequest:
    """The first problem of a spec, named by its key path (``spec.sample_types[1].schema``)."""
    first = exc.errors()[0]
    where = _location(tuple(p for p in first["loc"] if not str(p).startswith("function-")))
    message = first["msg"].removeprefix("Value error, ")
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
    path = f"{param}.{where}" if where else param
    return InvalidRequest(f"{path}: {message}{suffix}", param=path, code="invalid_spec")


class _BoundedLoader(yaml.SafeLoader):
    """YAML without aliases (``*name``: a few hundred bytes of nested aliases expand to
    gigabytes, a "billion laughs", and a spec never needs them), nested at most
    `MAX_JSON_DEPTH` levels (PyYAML composes by recursion)."""

    def __init__(self, stream: str, what: str = "spec") -> None:
        super().__init__(stream)
        self._depth = 0
        self._what = what

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise _Refused(
                f"YAML aliases (*name) are not allowed in a {self._what} "
                f"(line {mark.line + 1}); "
                "write the value out"
            )
        self._depth += 1
        try:
            if self._depth > MAX_JSON_DEPTH:
                raise _Refused(too_deep_message(f"the {self._what}"))
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Refused(Exception):
    pass


def _check_size(
    size: int,
    param: str,
    *,
    what: str = "spec",
    max_bytes: int = MAX_SPEC_BYTES,
    code: str = "invalid_spec",
) -> None:
    if size > max_bytes:
        raise InvalidRequest(
            f"{param}: the {what} is {size} bytes, more than the {max_bytes} a {what} may have",
            param=param,
            code=code,
        )


def load_spec_data(
    text: str,
    *,
    param: str = "spec",
    what: str = "spec",
    max_bytes: int = MAX_SPEC_BYTES,
    code: str = "invalid_spec",
) -> dict[str, Any]:
    """A spec's YAML or JSON text as a mapping (JSON is YAML), at most ``max_bytes`` and
    without YAML aliases. Task schema files are read the same way (``what``, ``code``)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    _check_size(size, param, what=what, max_bytes=max_bytes, code=code)
    try:
        # A SafeLoader, bounded.
        data = yaml.load(text, Loader=functools.partial(_BoundedLoader, what=what))  # type: ignore[arg-type]
    except _Refused as exc:
        raise InvalidRequest(f"{param}: {exc}", param=param, code=code) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidRequest(
            f"{param}: not valid YAML or JSON{where}", param=param, code=code
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest(f"{param}: a {what} is a mapping of keys", param=param, code=code)
    return data


def parse_spec(data: dict[str, Any] | str, *, param: str = "spec") -> GenerationSpec:
    """Validate a spec given as a mapping or as YAML/JSON text; `InvalidRequest` names the
    key path at fault."""
    if isinstance(data, str):
        data = load_spec_data(data, param=param)
    elif json_depth_exceeds(data):
        raise InvalidRequest(too_deep_message(param), param=param, code="invalid_spec")
    else:
        _check_size(len(orjson.dumps(data)), param)
    try:
        return GenerationSpec.model_validate(data)
    except ValidationError as exc:
        raise spec_error(exc, param=param) from None


def read_spec_file(path: Path) -> tuple[GenerationSpec, dict[str, Any]]:
    """A spec file, with its ``file`` references (topics, grounding) inlined relative to it,
    so the job stores a spec that needs no file system."""
    _check_size(path.stat().st_size, path.name)
    data = load_spec_data(path.read_text(encoding="utf-8"), param=path.name)
    return parse_spec(inline_files(data, path.parent), param=path.name), data


def inline_files(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Replace ``topics.file`` and ``grounding.documents[].file`` by their contents."""
    data = orjson.loads(orjson.dumps(data))
    topics = data.get("topics")
    if isinstance(topics, dict) and isinstance(topics.get("file"), str):
        lines = (base / topics.pop("file")).read_text(encoding="utf-8").splitlines()
        topics["items"] = [line.strip() for line in lines if line.strip()]
    grounding = data.get("grounding")
    if isinstance(grounding, dict):
        for document in grounding.get("documents") or []:
            if isinstance(document, dict) and isinstance(document.get("file"), str):
                name = document.pop("file")
                document.setdefault("id", name)
                document["text"] = (base / name).read_text(encoding="utf-8")
    return data


def spec_hash(spec: GenerationSpec) -> str:
    """Equal for equal specs, whatever their key order or format."""
    dumped = spec.model_dump(mode="json", by_alias=True)
    return hashlib.sha256(orjson.dumps(dumped, option=orjson.OPT_SORT_KEYS)).hexdigest()


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema of a generation spec (published at ``/api/generation/spec-schema``)."""
    schema = GenerationSpec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://datamill.dev/schemas/generation-spec-v{SPEC_VERSION}.json"
    return schema


def cell_targets(spec: GenerationSpec, topics: list[str]) -> dict[tuple[str, str], int]:
    """Each topic x type cell's target; totals are spread evenly, the first cells taking
    the remainder. A type's own ``target`` replaces its share of the spec's."""
    targets: dict[tuple[str, str], int] = {}
    target = spec.target
    types = spec.sample_types
    for index, sample_type in enumerate(types):
        if sample_type.target is not None:
            per_type = sample_type.target
        elif target.per_cell is not None:
            per_type = target.per_cell * len(topics)
        elif target.per_type is not None:
            per_type = target.per_type
        else:
            assert target.total is not None
            per_type = target.total // len(types) + (index < target.total % len(types))
        base, extra = divmod(per_type, len(topics))
        for position, topic in enumerate(topics):
            targets[(topic, sample_type.name)] = base + (position < extra)
    return targets
