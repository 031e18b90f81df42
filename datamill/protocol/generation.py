"""Wire models of `/api/generation` (datamill's own API; no OpenAI counterpart)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class BudgetBody(BaseModel):
    """Budget values replacing the spec's (omitted: keep the spec's)."""

    model_config = ConfigDict(extra="forbid")

    usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    requests: int | None = Field(default=None, ge=1)
    seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class GenerationJobCreate(BaseModel):
    """A job: the spec as JSON (``spec``) or as YAML/JSON text (``spec_text``)."""

    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] | None = None
    spec_text: str | None = Field(default=None, max_length=10_000_000)
    dataset: str | None = Field(default=None, min_length=1, max_length=100)
    budget: BudgetBody | None = None


class GenerationJobResume(BaseModel):
    model_config = ConfigDict(extra="forbid")

    budget: BudgetBody | None = None


class GenerationPreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] | None = None
    spec_text: str | None = Field(default=None, max_length=10_000_000)
    topic: str | None = None
    sample_type: str | None = None


class GenerationCellObject(BaseModel):
    topic: str
    sample_type: str
    target: int
    accepted: int
    in_flight: int
    rejected: dict[str, int]
    duplicates: int
    surplus: int
    requests: int
    cost: float


class GenerationJobObject(BaseModel):
    id: str
    object: str = "generation.job"
    name: str
    status: str  # running | stopped | completed | budget_exhausted | failed
    stop_reason: str | None
    error: str | None
    dataset_id: str
    spec_hash: str
    spec_version: int
    topics: list[str]
    target: int
    accepted: int
    rejected: int
    duplicates: int
    surplus: int
    requests: int
    cost: float
    budget: dict[str, float | int | None]
    elapsed: float
    runner: str | None
    created_at: float
    updated_at: float
    finished_at: float | None
    progress_at: float | None
    cells: list[GenerationCellObject] | None = None


class GenerationRunObject(BaseModel):
    object: str = "generation.run"
    runner: str
    started_at: float
    ended_at: float | None
    outcome: str | None  # completed | budget_exhausted | stopped | released | lost | failed
    accepted_before: int
    accepted_after: int | None
