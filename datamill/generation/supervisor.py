"""The workers' generation side task: claims running jobs whose lease is free and drives
them, one `JobRunner` each, so `datamill serve` and `datamill worker` run jobs started
through the API. Exactly one process drives a job at a time (its lease); when that process
dies, its lease expires and another worker's supervisor takes the job over."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from datamill.generation.job import JobRunner
from datamill.generation.service import GenerationService
from datamill.storage import generation as repo

log = logging.getLogger("datamill.generation")


class GenerationSupervisor:
    def __init__(self, service: GenerationService, runner_id: str, *, max_jobs: int = 4) -> None:
        self.service = service
        self.runner_id = runner_id
        self.max_jobs = max_jobs
        self._runners: dict[str, tuple[JobRunner, asyncio.Task[str]]] = {}
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        deps = self.service.deps
        while not self._stopping.is_set():
            for job_id, (_, task) in list(self._runners.items()):
                if task.done():
                    del self._runners[job_id]
            if len(self._runners) < self.max_jobs:
                try:
                    job = await repo.claim_job(
                        deps.database,
                        runner=self.runner_id,
                        now=deps.clock.now(),
                        ttl=self.service.options.lease_ttl,
                    )
                except Exception:
                    log.exception("could not claim generation jobs")
                    job = None
                if job is not None and job.id not in self._runners:
                    runner = JobRunner(deps, job, self.runner_id, self.service.options)
                    task = asyncio.create_task(runner.run(), name=f"generation-{job.id}")
                    self._runners[job.id] = (runner, task)
                    continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._stopping.wait()
        for runner, _ in self._runners.values():
            runner.stop()
        await asyncio.gather(*(task for _, task in self._runners.values()), return_exceptions=True)

    def stop(self) -> None:
        self._stopping.set()
