"""The runtime's side tasks, wired once for every role: which named tasks each role starts
(serve with workers and worker: one `webhooks` each, batch run none),
and that stopping them leaves only the process's own (the background writers and the
deployment monitor), which closing the runtime stops, writing what they hold."""

from __future__ import annotations

from datamill.engine.worker import WorkerOptions
from datamill.events.topics import Topic
from datamill.runtime import Role

# The process's own side tasks, whatever its role.
OWN = ["event-publisher", "gateway-call-log", "deployment-monitor"]


async def test_serve_runs_its_workers_each_with_a_generation_supervisor(make_runtime):
    runtime = await make_runtime(workers=2)
    assert runtime.side_tasks.names == OWN

    first, second = runtime.start_side_tasks(Role.serve)

    assert runtime.side_tasks.names == [
        *OWN,
        first.id,
        f"generation-{first.id}",
        second.id,
        f"generation-{second.id}",
        "webhooks",
    ]
    assert {first.options.kind, second.options.kind} == {"serve"}
    await first.started.wait()
    await runtime.stop_side_tasks()
    assert runtime.side_tasks.names == OWN
    assert runtime.side_tasks.failure is None


async def test_a_worker_process_runs_one_worker_and_batch_run_no_generation(make_runtime):
    runtime = await make_runtime(workers=3)  # serve's setting: not the worker command's
    (worker,) = runtime.start_side_tasks(Role.worker)
    assert runtime.side_tasks.names == [*OWN, worker.id, f"generation-{worker.id}", "webhooks"]
    assert worker.options.kind == "worker"
    await runtime.stop_side_tasks()

    (runner,) = runtime.start_side_tasks(
        Role.run, options=WorkerOptions(batch_ids=frozenset({"batch_x"}), idle_poll=0.1)
    )
    assert runtime.side_tasks.names == [*OWN, runner.id]
    assert (runner.options.kind, runner.options.batch_ids) == ("run", frozenset({"batch_x"}))
    await runtime.stop_side_tasks()
    assert runtime.side_tasks.names == OWN


async def test_closing_stops_the_writers_and_writes_what_they_hold(make_runtime):
    runtime = await make_runtime()
    assert runtime.side_tasks.running("event-publisher")
    runtime.events.publish(Topic.batch, {"probe": 1})

    await runtime.close()

    assert runtime.side_tasks.names == []
    assert runtime.events.pending == 0
    assert runtime.events.written >= 1
