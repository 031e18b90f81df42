"""The workers' generation side task: claims running jobs that no running worker holds and
drives them, one `JobRunner` each, so `datamill serve` and `datamill worker` run jobs started
through the API. Exactly one worker drives a job at a time (its claim, kept by its
heartbeat); when that worker dies, the sweep that declares it dead releases the job
(`storage.leasing.release_dead_workers`) and another worker's supervisor takes it over."""

from __future__ import annotations

import asyncio
import logging

from datamill.clock import wait_event
from datamill.generation.job import JobRunner
from datamill.generation.service import GenerationService
from datamill.storage import generation as repo

log = logging.getLogger("datamill.generation")


class GenerationSupervisor:
    def __init__(self, service: GenerationService, worker_id: str, *, max_jobs: int = 4) -> None:
        self.service = service
        self.worker_id = worker_id
        self.max_jobs = max_jobs
        self._runners: dict[str, tuple[JobRunner, asyncio.Task[str]]] = {}
        # Jobs whose runner lost the store: still claimed by this worker, taken again here.
        self._interrupted: set[str] = set()
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        while not self._stopping.is_set():
            for job_id, (_, task) in list(self._runners.items()):
                if task.done():
                    del self._runners[job_id]
                    if self._left_claimed(job_id, task):
                        self._interrupted.add(job_id)
            if len(self._runners) < self.max_jobs:
                job = await self._claim()
                if job is not None and job.id not in self._runners:
                    runner = JobRunner(self.service.deps, job, self.worker_id, self.service.options)
                    task = asyncio.create_task(runner.run(), name=f"generation-{job.id}")
                    self._runners[job.id] = (runner, task)
                    continue
            await wait_event(self.service.deps.clock, self._stopping, 1.0)
        for runner, _ in self._runners.values():
            runner.stop()
        await asyncio.gather(*(task for _, task in self._runners.values()), return_exceptions=True)

    @staticmethod
    def _left_claimed(job_id: str, task: asyncio.Task[str]) -> bool:
        """Whether the ended run may have left the job claimed by this worker."""
        if task.cancelled():
            return True
        error = task.exception()
        if error is not None:
            log.error("generation job %s: its runner ended with %r", job_id, error)
            return True
        return task.result() == "interrupted"

    async def _claim(self) -> repo.JobRecord | None:
        """A job this worker's runner left claimed (asked for by name), else a free one."""
        deps = self.service.deps
        try:
            for job_id in sorted(self._interrupted):
                job = await repo.claim_job(
                    deps.database, worker_id=self.worker_id, now=deps.clock.now(), job_id=job_id
                )
                self._interrupted.discard(job_id)  # taken again, or stopped meanwhile
                if job is not None:
                    return job
            return await repo.claim_job(
                deps.database, worker_id=self.worker_id, now=deps.clock.now()
            )
        except Exception:
            log.exception("could not claim generation jobs")
            return None

    def stop(self) -> None:
        self._stopping.set()
