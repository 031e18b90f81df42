"""GenerationService: the one way to create, read, stop and resume generation jobs.

The API, the CLI and the workers' generation side task call it. Creating a job records it
as ``running``; a runner (a worker's side task, or `datamill generate` in its own process)
claims it and drives it (`job.JobRunner`). Unknown jobs are 404s naming ``job_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from datamill.errors import Conflict, InvalidRequest, NotFound
from datamill.gateway.service import GatewayService
from datamill.generation.coverage import add_diversity, dataset_coverage, job_coverage
from datamill.generation.job import JobRunner, RunnerDeps, RunnerOptions, publish_status
from datamill.generation.preview import preview
from datamill.generation.spec import (
    SPEC_VERSION,
    GenerationSpec,
    cell_targets,
    parse_spec,
    spec_hash,
)
from datamill.generation.topics import resolve_topics
from datamill.scheduler.router import Router
from datamill.storage import generation as repo
from datamill.storage.samples import count_cells
from datamill.storage.schema import DEFAULT_PROJECT_ID

log = logging.getLogger("datamill.generation")

# Statuses a job can be resumed from.
RESUMABLE = ("stopped", "budget_exhausted", "failed", "completed")


@dataclass(frozen=True, slots=True)
class JobView:
    job: repo.JobRecord
    cells: list[repo.CellRecord]


@dataclass(frozen=True, slots=True)
class BudgetOverride:
    """Budget values that replace the spec's (None: keep)."""

    usd: float | None = None
    requests: int | None = None
    seconds: float | None = None

    def values(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in (("usd", self.usd), ("requests", self.requests), ("seconds", self.seconds))
            if v is not None
        }


def new_job_id() -> str:
    import secrets

    return f"gen_{secrets.token_hex(12)}"


class GenerationService:
    def __init__(
        self, deps: RunnerDeps, gateway: GatewayService, router: Router, options: RunnerOptions
    ) -> None:
        self.deps = deps
        self.gateway = gateway
        self.router = router
        self.options = options

    # -- jobs -------------------------------------------------------------------------------

    async def create(
        self,
        spec_input: dict[str, Any] | str,
        *,
        dataset: str | None = None,
        budget: BudgetOverride | None = None,
        idempotency_key: str | None = None,
        project_id: str = DEFAULT_PROJECT_ID,
    ) -> repo.JobRecord:
        """A new running job from a spec (a mapping, or YAML/JSON text). With
        ``idempotency_key``, the job first created with it is returned instead (`Conflict`
        when that job has another spec)."""
        spec = await asyncio.to_thread(parse_spec, spec_input)
        if idempotency_key is not None:
            found = await repo.find_job_by_key(
                self.deps.database, idempotency_key, project_id=project_id
            )
            if found is not None:
                return _same_spec(found, spec, idempotency_key)
        if spec.dedup.near:
            _check_embeddings()
        topics = await resolve_topics(spec, self.gateway)
        targets = cell_targets(spec, topics)
        overrides = budget.values() if budget else {}
        now = self.deps.clock.now()
        try:
            job = await repo.create_job(
                self.deps.database,
                dataset_name=dataset or spec.dataset_name,
                dataset_description=spec.description,
                targets=targets,
                id=new_job_id(),
                project_id=project_id,
                name=spec.name,
                status=repo.RUNNABLE,
                spec=spec.model_dump(mode="json", by_alias=True, exclude_none=True),
                spec_text=spec_input if isinstance(spec_input, str) else None,
                spec_hash=spec_hash(spec),
                spec_version=SPEC_VERSION,
                topics=topics,
                budget_usd=overrides.get("usd", spec.budget.usd),
                budget_requests=overrides.get("requests", spec.budget.requests),
                budget_seconds=overrides.get("seconds", spec.budget.seconds),
                created_at=now,
                updated_at=now,
                idempotency_key=idempotency_key,
            )
        except repo.JobKeyTaken as taken:
            # Another request created the job with this key first.
            found = await repo.find_job_by_key(self.deps.database, taken.key, project_id=project_id)
            if found is None:
                raise
            return _same_spec(found, spec, taken.key)
        await publish_status(self.deps, job.id)
        return job

    async def get(self, job_id: str, *, project_id: str = DEFAULT_PROJECT_ID) -> JobView:
        found = None
        if _storable(job_id):
            found = await repo.get_job_with_cells(self.deps.database, job_id, project_id=project_id)
        if found is None:
            raise _no_job(job_id)
        return JobView(*found)

    async def list_jobs(
        self,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        after: str | None = None,
        limit: int = 20,
        status: str | None = None,
    ) -> tuple[list[tuple[repo.JobRecord, int]], bool]:
        """A page of jobs, newest first, each with its total target."""
        jobs, more = await repo.list_jobs(
            self.deps.database, project_id=project_id, after=after, limit=limit, status=status
        )
        targets = await repo.job_targets(self.deps.database, [job.id for job in jobs])
        return [(job, targets.get(job.id, 0)) for job in jobs], more

    async def find_by_key(
        self, key: str, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> repo.JobRecord | None:
        return await repo.find_job_by_key(self.deps.database, key, project_id=project_id)

    async def stop(self, job_id: str, *, project_id: str = DEFAULT_PROJECT_ID) -> repo.JobRecord:
        """Stop a running job: its batches are cancelled (answers already recorded are kept
        for a resume); its runner ends at its next round."""
        stop = None
        if _storable(job_id):
            stop = await repo.stop_job(
                self.deps.database, job_id, project_id=project_id, now=self.deps.clock.now()
            )
        if stop is None:
            raise _no_job(job_id)
        job = stop.job
        if not stop.stopped:
            if job.status == "stopped":
                return job
            raise Conflict(
                f"job {job_id} is {job.status} and cannot be stopped",
                param="job_id",
                code="job_not_running",
            )
        for batch_id in stop.batch_ids:
            with contextlib.suppress(Conflict, NotFound):
                await self.deps.batches.cancel(batch_id, project_id=project_id)
        await publish_status(self.deps, job.id)
        return job

    async def resume(
        self,
        job_id: str,
        *,
        budget: BudgetOverride | None = None,
        project_id: str = DEFAULT_PROJECT_ID,
    ) -> repo.JobRecord:
        """Run a stopped, failed or budget-exhausted job again (a larger budget may be given;
        a completed one only checks its cells again)."""
        resumed = None
        if _storable(job_id):
            resumed = await repo.resume_job(
                self.deps.database,
                job_id,
                project_id=project_id,
                budget=budget.values() if budget is not None else {},
                resumable=RESUMABLE,
                now=self.deps.clock.now(),
            )
        if resumed is None:
            raise _no_job(job_id)
        job = resumed
        await publish_status(self.deps, job.id)
        return job

    async def history(
        self, job_id: str, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> list[repo.RunRecord]:
        await self._job(job_id, project_id)
        return await repo.list_runs(self.deps.database, job_id)

    async def stuck(
        self, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> list[tuple[repo.JobRecord, int]]:
        """Running jobs with no answer recorded for the runner's ``stuck_after``, each with
        its total target."""
        jobs = await repo.stuck_jobs(
            self.deps.database,
            project_id=project_id,
            now=self.deps.clock.now(),
            stuck_after=self.options.stuck_after,
        )
        targets = await repo.job_targets(self.deps.database, [job.id for job in jobs])
        return [(job, targets.get(job.id, 0)) for job in jobs]

    # -- reports ----------------------------------------------------------------------------

    async def coverage(
        self, job_id: str, *, diversity: bool = True, project_id: str = DEFAULT_PROJECT_ID
    ) -> dict[str, Any]:
        """The job's coverage report (`coverage.job_coverage`), with diversity if asked."""
        view = await self.get(job_id, project_id=project_id)
        report = job_coverage(view.job, view.cells)
        if diversity:
            report = await add_diversity(report, self.deps.database, view.job.dataset_id)
        return report

    async def dataset_coverage(self, dataset_id: str, *, diversity: bool = True) -> dict[str, Any]:
        """Samples per topic x type of a dataset (no targets), with diversity if asked."""
        counts = await count_cells(self.deps.database, dataset_id)
        report = dataset_coverage(dataset_id, counts)
        if diversity:
            report = await add_diversity(report, self.deps.database, dataset_id)
        return report

    async def preview(
        self,
        spec_input: dict[str, Any] | str,
        *,
        topic: str | None = None,
        sample_type: str | None = None,
    ) -> dict[str, Any]:
        spec = await asyncio.to_thread(parse_spec, spec_input)
        topics = await resolve_topics(spec, self.gateway)
        return await preview(
            spec,
            topics,
            gateway=self.gateway,
            router=self.router,
            topic=topic,
            sample_type=sample_type,
        )

    async def describe(self, spec_input: dict[str, Any] | str) -> dict[str, Any]:
        """A spec's topics (generated ones asked of the model), sample types and targets."""
        spec = await asyncio.to_thread(parse_spec, spec_input)
        return spec_summary(spec, await resolve_topics(spec, self.gateway))

    # -- running ----------------------------------------------------------------------------

    async def run_job(
        self, job_id: str, *, runner_id: str, stop: asyncio.Event | None = None
    ) -> str:
        """Drive ``job_id`` in this process, as worker ``runner_id``, until it ends (or
        ``stop`` is set); waits while another running worker holds it (until that one is
        declared dead). Returns the run's outcome."""
        while True:
            job = await repo.claim_job(
                self.deps.database,
                worker_id=runner_id,
                now=self.deps.clock.now(),
                job_id=job_id,
            )
            if job is not None:
                break
            view = await self.get(job_id)
            if view.job.status != repo.RUNNABLE:
                return view.job.status
            if stop is not None and stop.is_set():
                return "released"
            await self.deps.clock.sleep(self.options.poll)
        runner = JobRunner(self.deps, job, runner_id, self.options)
        if stop is None:
            return await runner.run()
        waiter = asyncio.create_task(stop.wait())
        task = asyncio.create_task(runner.run())
        done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if waiter in done:
            runner.stop()
        waiter.cancel()
        return await task

    # -- helpers ----------------------------------------------------------------------------

    async def _job(self, job_id: str, project_id: str) -> repo.JobRecord:
        job = None
        if _storable(job_id):
            job = await repo.get_job(self.deps.database, job_id, project_id=project_id)
        if job is None:
            raise _no_job(job_id)
        return job


def _storable(job_id: str) -> bool:
    return "\x00" not in job_id


def _no_job(job_id: str) -> NotFound:
    shown = repr(job_id) if not _storable(job_id) else job_id
    return NotFound(f"No such generation job: {shown}", param="job_id")


def _check_embeddings() -> None:
    try:
        import numpy  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise InvalidRequest(
            "spec.dedup.near: near-duplicate removal needs the embeddings extra "
            "(pip install 'datamill[embeddings]'); or set dedup.near to false",
            param="spec.dedup.near",
            code="embeddings_unavailable",
        ) from None


def spec_summary(spec: GenerationSpec, topics: list[str]) -> dict[str, Any]:
    """What a spec asks for, for listings and previews."""
    targets = cell_targets(spec, topics)
    return {
        "name": spec.name,
        "model": spec.model,
        "topics": topics,
        "sample_types": [
            {"name": t.name, "description": t.description, "schema": t.output_schema}
            for t in spec.sample_types
        ],
        "target": sum(targets.values()),
        "cells": len(targets),
        "spec": orjson.loads(orjson.dumps(spec.model_dump(mode="json", by_alias=True))),
    }


def _same_spec(job: repo.JobRecord, spec: GenerationSpec, key: str) -> repo.JobRecord:
    """``job``, found by ``key``; `Conflict` when it was created from another spec."""
    if job.spec_hash != spec_hash(spec):
        raise Conflict(
            f"Idempotency-Key {key!r} was used for job {job.id} with another spec; "
            "send the same spec again, or use a new key",
            param="Idempotency-Key",
            code="idempotency_key_reused",
        )
    return job
