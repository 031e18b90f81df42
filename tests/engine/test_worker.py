"""The worker's lifecycle: it stops when told to, a store error does not stop it, and its
sweep deletes expired files."""

from __future__ import annotations

import asyncio

import pytest

from datamill.engine.context import WorkSignal
from datamill.errors import StorageError
from datamill.storage import files as file_repo
from datamill.storage import leasing
from datamill.storage.schema import DEFAULT_PROJECT_ID as PROJECT
from tests.conftest import mock_deployment
from tests.engine.conftest import assert_each_once, wait_until
from tests.helpers import (
    chat_line,
    jsonl,
    read_all,
    run_batch,
    running_worker,
    stream,
    submit,
)


async def test_a_loop_waiting_on_the_signal_can_be_cancelled_as_it_is_notified():
    # Worker.stop() notifies the signal, then the shutdown cancels the sweep that waits on it.
    # The cancel must not be swallowed when it lands as the wait ends (asyncio.wait_for on 3.11
    # swallowed it, and stop() then hung forever).
    signal = WorkSignal()

    async def sweep_loop() -> None:
        while True:
            await signal.wait(10)

    task = asyncio.create_task(sweep_loop())
    await asyncio.sleep(0.01)
    signal.notify()
    await asyncio.sleep(0)  # the wait's inner task finishes ...
    task.cancel()  # ... and the cancel arrives in the same turn
    done, _ = await asyncio.wait([task], timeout=2)
    if not done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert done, "the loop ignored its cancellation"
    assert task.cancelled()


async def test_signal_wait_times_out_and_wakes_on_notify():
    signal = WorkSignal()
    loop = asyncio.get_running_loop()
    start = loop.time()
    await signal.wait(0.05)
    assert loop.time() - start >= 0.04
    waiter = asyncio.create_task(signal.wait(10))
    await asyncio.sleep(0.01)
    signal.notify()
    await asyncio.wait_for(waiter, timeout=2)


async def test_signal_wait_follows_the_injected_clock():
    # The sweep's interval is the clock's time: a test clock that holds its sleeps holds the
    # wait, however long it really takes, and lets it go when the test says time has passed.
    release = asyncio.Event()

    class HeldClock:
        def now(self) -> float:
            return 0.0

        def monotonic(self) -> float:
            return 0.0

        async def sleep(self, seconds: float) -> None:
            await release.wait()

    signal = WorkSignal(HeldClock())
    waiter = asyncio.create_task(signal.wait(0.001))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    release.set()
    await asyncio.wait_for(waiter, timeout=10)


async def test_a_store_error_while_leasing_does_not_stop_the_worker(
    make_runtime, mock_provider, monkeypatch
):
    real_lease = leasing.lease_requests
    failures = 0

    async def lease_after_an_outage(*args, **kwargs):
        nonlocal failures
        if failures < 2:
            failures += 1
            raise StorageError("the store is not usable: server closed the connection")
        return await real_lease(*args, **kwargs)

    monkeypatch.setattr(leasing, "lease_requests", lease_after_an_outage)
    runtime = await make_runtime([mock_deployment(mock_provider)])
    ids = [f"r{i}" for i in range(10)]
    batch, outputs, errors = await run_batch(runtime, jsonl(chat_line(i) for i in ids), timeout=60)

    assert failures == 2
    assert batch.status == "completed"
    assert_each_once(outputs, errors, ids)
    assert errors == []


async def test_expired_files_are_deleted_with_their_blobs(make_runtime, offset_clock):
    runtime = await make_runtime(clock=offset_clock)
    kept = await runtime.files.upload(stream(b"keep\n"), filename="k.jsonl", purpose="batch")
    short = await runtime.files.upload(
        stream(b"short\n"), filename="s.jsonl", purpose="batch", expires_after=3600
    )
    offset_clock.jump(2 * 3600)

    async def gone() -> bool:
        # The row goes first, then the blob, in a transaction of its own: wait for both, or
        # the worker could be stopped in between.
        if await file_repo.get_file(runtime.database, short.id, project_id=PROJECT) is not None:
            return False
        try:
            await read_all(runtime.blobs.read(short.id))
        except StorageError:
            return True
        return False

    async with running_worker(runtime):
        await wait_until(gone)

    with pytest.raises(StorageError):
        await read_all(runtime.blobs.read(short.id))
    assert (await runtime.files.get(kept.id)).id == kept.id
    assert await read_all(runtime.blobs.read(kept.id)) == b"keep\n"


async def test_a_bug_inside_datamill_ends_the_request_with_an_internal_error(
    make_runtime, mock_provider, monkeypatch
):
    from datamill.engine.executor import RequestExecutor

    build_call = RequestExecutor._build_call

    def broken_for_r3(self, request, *args, **kwargs):
        if request.custom_id == "r3":
            raise RuntimeError("a bug")
        return build_call(self, request, *args, **kwargs)

    monkeypatch.setattr(RequestExecutor, "_build_call", broken_for_r3)
    runtime = await make_runtime([mock_deployment(mock_provider)])

    batch, outputs, errors = await run_batch(runtime, jsonl(chat_line(f"r{n}") for n in range(6)))

    assert batch.status == "completed"
    assert_each_once(outputs, errors, [f"r{n}" for n in range(6)])
    [error] = errors
    assert error["custom_id"] == "r3"
    assert error["error"]["code"] == "internal_error"
    assert "RuntimeError: a bug" in error["error"]["message"]


async def test_answers_waiting_for_their_commit_do_not_hold_call_slots(
    make_runtime, mock_provider, monkeypatch
):
    # A slow store: each group commit takes 50 ms while the provider answers at once. Calls
    # keep going out meanwhile (their slots are free once answered), but requests sent and
    # not recorded never exceed the concurrency plus one commit window.
    from datamill.engine import writer
    from datamill.engine.worker import WorkerOptions
    from datamill.providers.openai import OpenAIProvider

    sent = recorded = worst = 0
    real_complete = OpenAIProvider.complete
    real_record = writer.record_results

    async def counted_call(self, call):
        nonlocal sent, worst
        sent += 1
        worst = max(worst, sent - recorded)
        return await real_complete(self, call)

    async def slow_commit(database, results, *, now):
        nonlocal recorded
        await asyncio.sleep(0.05)
        outcome = await real_record(database, results, now=now)
        recorded += len(results)
        return outcome

    monkeypatch.setattr(OpenAIProvider, "complete", counted_call)
    monkeypatch.setattr(writer, "record_results", slow_commit)
    runtime = await make_runtime([mock_deployment(mock_provider)])
    ids = [f"r{i}" for i in range(200)]
    options = WorkerOptions(concurrency=8)

    batch, outputs, errors = await run_batch(
        runtime, jsonl(chat_line(i) for i in ids), worker={"concurrency": 8}
    )

    assert batch.status == "completed"
    assert_each_once(outputs, errors, ids)
    assert mock_provider.stats()["peak_in_flight"] <= options.concurrency
    assert options.concurrency < worst <= options.max_unrecorded


@pytest.mark.serial  # a latency bound: the batch is done within 2 s
async def test_an_idle_worker_starts_a_new_batch_at_once_not_at_its_next_poll(
    make_runtime, mock_provider
):
    # Polls 5 s apart: the batch must not wait for them. Its creation and its validation
    # wake the worker, and the sweep that sees it running wakes the lease loop.
    runtime = await make_runtime([mock_deployment(mock_provider)])
    async with running_worker(runtime, idle_poll=5.0, sweep_interval=5.0):
        await asyncio.sleep(0.2)  # idle, waiting
        start = asyncio.get_running_loop().time()
        batch = await submit(runtime, jsonl(chat_line(f"r{i}") for i in range(3)))
        batch = await runtime.batches.wait(batch.id, timeout=30, poll=0.02)
        elapsed = asyncio.get_running_loop().time() - start

    assert batch.status == "completed"
    assert elapsed < 2.0


async def test_a_validation_that_keeps_failing_inside_datamill_fails_its_batch(
    make_runtime, mock_provider, monkeypatch
):
    # A bug in validation (not bad input): tried a few times, then the batch fails with a
    # clear error instead of staying in validating forever; other batches are unaffected.
    from datamill.engine import validation
    from datamill.engine.maintenance import MAX_VALIDATION_ATTEMPTS

    check_line = validation.check_line
    calls = 0

    def broken_on_boom(line, *args, **kwargs):
        nonlocal calls
        if b"boom" in line.data:
            calls += 1
            raise RuntimeError("a bug")
        return check_line(line, *args, **kwargs)

    monkeypatch.setattr(validation, "check_line", broken_on_boom)
    runtime = await make_runtime([mock_deployment(mock_provider)])
    broken = await submit(runtime, jsonl([chat_line("a"), chat_line("b", text="boom")]))
    fine = await submit(runtime, jsonl([chat_line("c")]))
    async with running_worker(runtime):
        broken = await runtime.batches.wait(broken.id, timeout=30, poll=0.05)
        fine = await runtime.batches.wait(fine.id, timeout=30, poll=0.05)

    assert (broken.status, fine.status) == ("failed", "completed")
    assert calls == MAX_VALIDATION_ATTEMPTS
    [error] = broken.errors or []
    assert error["code"] == "internal_error"
    assert "RuntimeError('a bug')" in error["message"]
    assert "report it" in error["message"]
    assert mock_provider.stats()["total"] == 1  # only the fine batch's request was sent


async def test_a_failed_result_writer_stops_the_worker_loudly_and_gives_its_leases_back(
    make_runtime, mock_provider, monkeypatch
):
    # The writer is the worker's one critical side task: without it nothing is recorded, so
    # the worker stops (rather than executing requests whose results it cannot keep) and
    # run() raises the failure, naming the task.
    from datamill.engine.writer import ResultWriter
    from datamill.errors import SideTaskFailed

    async def broken(self: ResultWriter) -> None:
        raise OSError("the writer broke")

    monkeypatch.setattr(ResultWriter, "run", broken)
    runtime = await make_runtime([mock_deployment(mock_provider)])
    batch = await submit(runtime, jsonl(chat_line(f"r{n}") for n in range(20)))
    worker = runtime.new_worker()
    with pytest.raises(SideTaskFailed, match="side task 'writer' failed: OSError: the writer"):
        await asyncio.wait_for(worker.run(), timeout=60)
    assert await leasing.release_leases(runtime.database, worker_id=worker.id) == 0
    assert (await runtime.batches.get(batch.id)).completed_count == 0
