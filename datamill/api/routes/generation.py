"""`/api/generation`: generation jobs (start, list, get, stop, resume, history, coverage),
preview, the spec's JSON Schema, and the listings a dashboard needs."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ValidationError

from datamill.api.deps import ProjectDep, RuntimeDep
from datamill.callers import MEMBER, VIEWER
from datamill.errors import InvalidRequest
from datamill.generation.service import BudgetOverride, spec_summary
from datamill.generation.spec import parse_spec, spec_json_schema
from datamill.plugins import provider_references
from datamill.protocol.common import ListObject
from datamill.protocol.generation import (
    BudgetBody,
    GenerationJobCreate,
    GenerationJobObject,
    GenerationJobResume,
    GenerationPreviewRequest,
    GenerationRunObject,
)
from datamill.render.generation import job_object, run_object

router = APIRouter(prefix="/api/generation", tags=["generation"])

_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


async def _body(request: Request, model: type[BaseModel]) -> Any:
    """The body as ``model`` (JSON), or, sent as YAML text, as ``{"spec_text": ...}``."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in _YAML_TYPES:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(
                "the spec is not UTF-8 text", param="spec", code="invalid_spec"
            ) from None
        return model.model_validate({"spec_text": text})
    if not raw.strip():
        raise InvalidRequest("the request needs a body: a spec", param="spec", code="invalid_spec")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"the request body is not valid JSON ({exc.msg}); send YAML as text/yaml",
            code="invalid_json",
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidRequest(
            f"{where}: {first['msg']}" if where else first["msg"], param=where, code="invalid_value"
        ) from None


def _spec_input(spec: dict[str, Any] | None, spec_text: str | None) -> dict[str, Any] | str:
    if (spec is None) == (spec_text is None):
        raise InvalidRequest(
            "give exactly one of spec or spec_text", param="spec", code="invalid_spec"
        )
    if spec_text is not None:
        if "\x00" in spec_text:
            raise InvalidRequest(
                "spec_text holds a NUL character", param="spec_text", code="invalid_spec"
            )
        return spec_text
    assert spec is not None
    return spec


def _budget(body: BudgetBody | None) -> BudgetOverride | None:
    if body is None:
        return None
    return BudgetOverride(usd=body.usd, requests=body.requests, seconds=body.seconds)


@router.post("/jobs", dependencies=[MEMBER], response_model=GenerationJobObject)
async def create_job(
    request: Request, runtime: RuntimeDep, project_id: ProjectDep
) -> GenerationJobObject:
    """Start a job from a spec: JSON ``{"spec": {...}}`` or ``{"spec_text": "..."}``, or
    the YAML itself with ``Content-Type: application/yaml``."""
    body: GenerationJobCreate = await _body(request, GenerationJobCreate)
    job = await runtime.generation.create(
        _spec_input(body.spec, body.spec_text),
        dataset=body.dataset,
        budget=_budget(body.budget),
        project_id=project_id,
    )
    view = await runtime.generation.get(job.id, project_id=project_id)
    return job_object(view.job, view.cells)


@router.get("/jobs", dependencies=[VIEWER], response_model=ListObject[GenerationJobObject])
async def list_jobs(
    runtime: RuntimeDep,
    project_id: ProjectDep,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    status: str | None = None,
) -> ListObject[GenerationJobObject]:
    """Jobs, newest first (without their cells)."""
    for name, value in (("after", after), ("status", status)):
        if value is not None and "\x00" in value:
            raise InvalidRequest(f"{name} holds a NUL character", param=name)
    jobs, has_more = await runtime.generation.list_jobs(
        project_id=project_id, after=after, limit=limit, status=status
    )
    data = [job_object(job, target=target) for job, target in jobs]
    return ListObject[GenerationJobObject].page(data, has_more=has_more)


@router.get("/jobs/{job_id}", dependencies=[VIEWER], response_model=GenerationJobObject)
async def get_job(job_id: str, runtime: RuntimeDep, project_id: ProjectDep) -> GenerationJobObject:
    view = await runtime.generation.get(job_id, project_id=project_id)
    return job_object(view.job, view.cells)


@router.post("/jobs/{job_id}/stop", dependencies=[MEMBER], response_model=GenerationJobObject)
async def stop_job(job_id: str, runtime: RuntimeDep, project_id: ProjectDep) -> GenerationJobObject:
    await runtime.generation.stop(job_id, project_id=project_id)
    view = await runtime.generation.get(job_id, project_id=project_id)
    return job_object(view.job, view.cells)


@router.post("/jobs/{job_id}/resume", dependencies=[MEMBER], response_model=GenerationJobObject)
async def resume_job(
    job_id: str, request: Request, runtime: RuntimeDep, project_id: ProjectDep
) -> GenerationJobObject:
    """Run a stopped, failed or budget-exhausted job again; the body may raise its budget."""
    body = GenerationJobResume()
    if (await request.body()).strip():
        body = await _body(request, GenerationJobResume)
    await runtime.generation.resume(job_id, budget=_budget(body.budget), project_id=project_id)
    view = await runtime.generation.get(job_id, project_id=project_id)
    return job_object(view.job, view.cells)


@router.get(
    "/jobs/{job_id}/history", dependencies=[VIEWER], response_model=ListObject[GenerationRunObject]
)
async def job_history(
    job_id: str, runtime: RuntimeDep, project_id: ProjectDep
) -> ListObject[GenerationRunObject]:
    """The job's runs, oldest first: who drove it, when, and how each ended."""
    runs = await runtime.generation.history(job_id, project_id=project_id)
    data = [run_object(run) for run in runs]
    return ListObject[GenerationRunObject].page(data, has_more=False)


@router.get("/jobs/{job_id}/coverage", dependencies=[VIEWER])
async def job_coverage(
    job_id: str, runtime: RuntimeDep, project_id: ProjectDep, diversity: bool = True
) -> dict[str, Any]:
    """Counts per topic x type against targets, rejections by reason, the duplicate rate,
    and diversity (``diversity=false`` skips embedding the samples)."""
    return await runtime.generation.coverage(job_id, diversity=diversity, project_id=project_id)


@router.get("/jobs/{job_id}/topics", dependencies=[VIEWER])
async def job_topics(job_id: str, runtime: RuntimeDep, project_id: ProjectDep) -> dict[str, Any]:
    view = await runtime.generation.get(job_id, project_id=project_id)
    return {"object": "list", "data": view.job.topics}


@router.get("/jobs/{job_id}/sample_types", dependencies=[VIEWER])
async def job_sample_types(
    job_id: str, runtime: RuntimeDep, project_id: ProjectDep
) -> dict[str, Any]:
    view = await runtime.generation.get(job_id, project_id=project_id)
    spec = await asyncio.to_thread(parse_spec, view.job.spec)  # seconds for a large one
    summary = spec_summary(spec, view.job.topics)
    return {"object": "list", "data": summary["sample_types"]}


@router.get("/stuck", dependencies=[VIEWER], response_model=ListObject[GenerationJobObject])
async def stuck_jobs(
    runtime: RuntimeDep, project_id: ProjectDep
) -> ListObject[GenerationJobObject]:
    """Running jobs with no answer recorded for DATAMILL_STUCK_AFTER seconds."""
    jobs = await runtime.generation.stuck(project_id=project_id)
    data = [job_object(job, target=target) for job, target in jobs]
    return ListObject[GenerationJobObject].page(data, has_more=False)


@router.post("/preview", dependencies=[MEMBER])
async def preview(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """One request per sample type run now: prompt, raw answer, parsed sample, verdict, and
    the estimated cost of the whole job. Nothing is stored."""
    body: GenerationPreviewRequest = await _body(request, GenerationPreviewRequest)
    return await runtime.generation.preview(
        _spec_input(body.spec, body.spec_text), topic=body.topic, sample_type=body.sample_type
    )


@router.post("/describe", dependencies=[MEMBER])
async def describe(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """A spec's topics (a generated topic tree is asked of its model), sample types, model
    and target, without starting anything."""
    body: GenerationPreviewRequest = await _body(request, GenerationPreviewRequest)
    return await runtime.generation.describe(_spec_input(body.spec, body.spec_text))


@router.get("/spec-schema", dependencies=[VIEWER])
async def spec_schema() -> dict[str, Any]:
    """The JSON Schema of a generation spec."""
    return spec_json_schema()


@router.get("/models", dependencies=[VIEWER])
async def models(runtime: RuntimeDep) -> dict[str, Any]:
    """The models and aliases a spec may name (as /v1/models lists them)."""
    return {"object": "list", "data": runtime.gateway.models()}


@router.get("/providers", dependencies=[VIEWER])
async def providers(runtime: RuntimeDep) -> dict[str, Any]:
    """The provider types installed, with the configured deployments of each."""
    by_type: dict[str, list[str]] = {}
    for deployment in runtime.settings.deployments:
        by_type.setdefault(deployment.provider, []).append(deployment.name)
    data = [
        {"name": name, "deployments": by_type.get(name, [])}
        for name in sorted(provider_references())
    ]
    return {"object": "list", "data": data}
