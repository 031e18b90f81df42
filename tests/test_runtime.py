"""The runtime's side tasks, wired once for every role: which named tasks each role starts,
and that stopping them leaves only the process's own (the deployment monitor)."""

from __future__ import annotations

from datamill.engine.worker import WorkerOptions
from datamill.runtime import Role


async def test_serve_runs_its_workers_each_with_a_generation_supervisor(make_runtime):
    runtime = await make_runtime(workers=2)
    assert runtime.side_tasks.names == ["deployment-monitor"]

    first, second = runtime.start_side_tasks(Role.serve)

    assert runtime.side_tasks.names == [
        "deployment-monitor",
        first.id,
        f"generation-{first.id}",
        second.id,
        f"generation-{second.id}",
    ]
    assert {first.options.kind, second.options.kind} == {"serve"}
    await first.started.wait()
    await runtime.stop_side_tasks()
    assert runtime.side_tasks.names == ["deployment-monitor"]
    assert runtime.side_tasks.failure is None


async def test_a_worker_process_runs_one_worker_and_batch_run_no_generation(make_runtime):
    runtime = await make_runtime(workers=3)  # serve's setting: not the worker command's
    (worker,) = runtime.start_side_tasks(Role.worker)
    assert runtime.side_tasks.names == ["deployment-monitor", worker.id, f"generation-{worker.id}"]
    assert worker.options.kind == "worker"
    await runtime.stop_side_tasks()

    (runner,) = runtime.start_side_tasks(
        Role.run, options=WorkerOptions(batch_ids=frozenset({"batch_x"}), idle_poll=0.1)
    )
    assert runtime.side_tasks.names == ["deployment-monitor", runner.id]
    assert (runner.options.kind, runner.options.batch_ids) == ("run", frozenset({"batch_x"}))
    await runtime.stop_side_tasks()
    assert runtime.side_tasks.names == ["deployment-monitor"]
