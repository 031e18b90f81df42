"""The generation supervisor's claims on both stores: a job is driven by one worker at a
time, and a job whose runner lost the store stays claimed by its worker, whose supervisor
takes it again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from datamill.generation import supervisor as supervisor_module
from datamill.generation.supervisor import GenerationSupervisor
from datamill.storage import generation as repo
from datamill.storage import workers as worker_repo
from tests.storage.conftest import NOW, worker
from tests.storage.test_generation import make_job


class Script:
    """Stands in for `JobRunner`: the first run ends ``interrupted`` (the store failed,
    the claim is left held), the next one runs until stopped."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, str]] = []
        self.second_started = asyncio.Event()

    def runner(self, deps: Any, job: repo.JobRecord, worker_id: str, options: Any) -> Any:
        script = self
        stopping = asyncio.Event()

        class Runner:
            async def run(self) -> str:
                script.runs.append((job.id, worker_id))
                if len(script.runs) == 1:
                    return "interrupted"
                script.second_started.set()
                await stopping.wait()
                return "released"

            def stop(self) -> None:
                stopping.set()

        return Runner()


async def test_a_job_left_claimed_by_an_interrupted_runner_is_taken_again_by_its_worker(
    make_runtime, monkeypatch: pytest.MonkeyPatch
):
    runtime = await make_runtime()
    database = runtime.database
    job_id, _ = await make_job(database, target=1, requests=0)
    for worker_id in ("w1", "w2"):
        await worker_repo.register_worker(database, worker(worker_id, at=NOW))
    script = Script()
    monkeypatch.setattr(supervisor_module, "JobRunner", script.runner)
    supervisor = GenerationSupervisor(runtime.generation, "w1")

    task = asyncio.create_task(supervisor.run())
    try:
        async with asyncio.timeout(30):
            await script.second_started.wait()
        # While its worker lives, the job is its worker's: nobody else takes it.
        assert await repo.claim_job(database, worker_id="w2", now=NOW + 1) is None
    finally:
        supervisor.stop()
        await task

    assert script.runs == [(job_id, "w1"), (job_id, "w1")]
