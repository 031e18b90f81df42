"""The generation jobs repository: jobs, their cells, the requests in flight, and runs.

Every public function takes the `Database` and runs in a transaction of its own; what must
be atomic is one function (`create_job`, `record_outcomes`, `stop_job`, `resume_job`,
`finish_job`, `add_batch_requests`), composed of the helpers taking a connection.

Guarantees:

- **A cell's target is never exceeded by a stored sample.** `record_outcomes` accepts a
  sample only through ``UPDATE generation_cells SET accepted = accepted + 1 WHERE ... AND
  accepted < target`` and inserts it in the same transaction (after the dataset's insert lock); an
  exact duplicate gives the place back. Two runners racing on one job (or two jobs on one
  dataset) cannot both take a cell's last place: the row lock makes the second re-check.
- **Each answer is used once.** An outcome counts only if its request row was still open
  (``UPDATE ... WHERE state != 'done' RETURNING``), in the same transaction.
- **One worker drives a job**: `claim_job` claims it with one claim statement
  (`leasing.claim_rows`); the worker's heartbeat keeps the claim, and a worker declared
  dead loses it (`leasing.release_dead_workers`) to the next claimant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from datamill.ids import new_dataset_id
from datamill.storage.database import Database, upsert_insert
from datamill.storage.datasets import (
    DatasetNameTaken,
    _find_dataset_by_name,
    _insert_dataset,
    _new,
)
from datamill.storage.leasing import claim_rows
from datamill.storage.records import from_row
from datamill.storage.samples import NewSample, _count_cells, _insert_samples, _lock_dataset
from datamill.storage.schema import (
    batches,
    generation_cells,
    generation_jobs,
    generation_rejections,
    generation_requests,
    generation_runs,
    requests,
    results,
    workers,
)

# Job statuses in which a runner may drive the job.
RUNNABLE = "running"


class JobKeyTaken(Exception):
    """Another job of the project was created with this idempotency key."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    project_id: str
    name: str
    dataset_id: str
    status: str
    stop_reason: str | None
    error: str | None
    spec: dict[str, Any]
    spec_text: str | None
    spec_hash: str
    spec_version: int
    topics: list[str]
    budget_usd: float | None
    budget_requests: int | None
    budget_seconds: float | None
    cost: float
    requests: int
    accepted: int
    rejected: int
    duplicates: int
    surplus: int
    elapsed: float
    runner: str | None  # the id of the worker driving the job (its claim)
    run_started_at: float | None
    created_at: float
    updated_at: float
    finished_at: float | None
    progress_at: float | None
    idempotency_key: str | None


@dataclass(frozen=True, slots=True)
class CellRecord:
    topic: str
    sample_type: str
    position: int
    target: int
    accepted: int
    rejected: int
    duplicates: int
    surplus: int
    requests: int
    cost: float
    in_flight: int = 0
    rejections: dict[str, int] = field(default_factory=dict)

    @property
    def deficit(self) -> int:
        return max(0, self.target - self.accepted)


@dataclass(frozen=True, slots=True)
class RunRecord:
    job_id: str
    runner: str
    started_at: float
    ended_at: float | None
    outcome: str | None
    accepted_before: int
    accepted_after: int | None


@dataclass(frozen=True, slots=True)
class IssuedRequest:
    """A request a job put in a batch (or, ``batch_id`` None, queued for one)."""

    topic: str
    sample_type: str
    kind: str  # sample | judge
    custom_id: str | None = None
    candidate: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """An open request of a job whose batch recorded a result for it."""

    request_id: int
    topic: str
    sample_type: str
    kind: str
    batch_id: str
    custom_id: str
    ok: bool
    body: bytes | None
    request_body: bytes
    error_code: str | None
    error_message: str | None
    deployment: str | None
    model: str | None
    input_tokens: int
    output_tokens: int
    cost: float
    candidate: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one answer, to record. ``accept``: ``sample`` goes in if its cell is
    still short; ``reject``: counted under ``reason``; ``judge``: ``candidate`` waits for
    the judge (a queued request)."""

    request_id: int
    topic: str
    sample_type: str
    action: str  # accept | reject | judge
    cost: float = 0.0
    reason: str | None = None
    sample: NewSample | None = None
    candidate: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    """What `record_outcomes` did with one outcome."""

    request_id: int
    result: str  # accepted | duplicate | surplus | rejected | judge | stale
    sample_id: str | None = None
    reason: str | None = None


# -- jobs -------------------------------------------------------------------------------------


async def create_job(
    database: Database,
    *,
    dataset_name: str,
    dataset_description: str | None,
    targets: dict[tuple[str, str], int],
    **values: Any,
) -> JobRecord:
    """A new job (``values``: its columns) filling the project's live dataset named
    ``dataset_name``, created when there is none, with a cell per (topic, type) of
    ``targets``: the accepted samples the dataset holds already count toward them. One
    transaction. `JobKeyTaken` when its ``idempotency_key`` is taken (the unique index
    decides between two racing creates). Jobs racing to create one dataset all fill it: the
    one whose dataset insert lost tries again, and finds the winner's."""
    try:
        return await _create_job(database, dataset_name, dataset_description, targets, values)
    except DatasetNameTaken:
        return await _create_job(database, dataset_name, dataset_description, targets, values)


async def _create_job(
    database: Database,
    dataset_name: str,
    dataset_description: str | None,
    targets: dict[tuple[str, str], int],
    values: dict[str, Any],
) -> JobRecord:
    project_id = values["project_id"]
    async with database.write() as conn:
        dataset = await _find_dataset_by_name(conn, dataset_name, project_id=project_id)
        if dataset is None:
            new = _new(
                new_dataset_id(),
                project_id,
                dataset_name,
                dataset_description,
                values["created_at"],
            )
            dataset = await _insert_dataset(conn, new)
        have = await _count_cells(conn, dataset.id)
        cells = {key: (target, have.get(key, 0)) for key, target in targets.items()}
        try:
            return await _insert_job(conn, cells=cells, dataset_id=dataset.id, **values)
        except IntegrityError:
            key = values.get("idempotency_key")
            if key is None:
                raise
            raise JobKeyTaken(key) from None


async def _insert_job(
    conn: AsyncConnection, *, cells: dict[tuple[str, str], tuple[int, int]], **values: Any
) -> JobRecord:
    """A new job with its cells: ``{(topic, type): (target, accepted already)}``."""
    row = (
        await conn.execute(insert(generation_jobs).values(**values).returning(*generation_jobs.c))
    ).one()
    rows = [
        {
            "job_id": values["id"],
            "topic": topic,
            "sample_type": sample_type,
            "position": position,
            "target": target,
            "accepted": min(target, have),
        }
        for position, ((topic, sample_type), (target, have)) in enumerate(cells.items())
    ]
    for start in range(0, len(rows), 500):
        await conn.execute(insert(generation_cells), rows[start : start + 500])
    accepted = sum(r["accepted"] for r in rows)
    if accepted:
        await conn.execute(
            update(generation_jobs)
            .where(generation_jobs.c.id == values["id"])
            .values(accepted=accepted)
        )
        row = (
            await conn.execute(select(generation_jobs).where(generation_jobs.c.id == values["id"]))
        ).one()
    return from_row(JobRecord, row)


async def get_job(
    database: Database, job_id: str, *, project_id: str | None = None
) -> JobRecord | None:
    async with database.read() as conn:
        return await _get_job(conn, job_id, project_id=project_id)


async def _get_job(
    conn: AsyncConnection, job_id: str, *, project_id: str | None = None
) -> JobRecord | None:
    query = select(generation_jobs).where(generation_jobs.c.id == job_id)
    if project_id is not None:
        query = query.where(generation_jobs.c.project_id == project_id)
    row = (await conn.execute(query)).first()
    return from_row(JobRecord, row) if row else None


async def find_job_by_key(database: Database, key: str, *, project_id: str) -> JobRecord | None:
    query = select(generation_jobs).where(
        generation_jobs.c.project_id == project_id, generation_jobs.c.idempotency_key == key
    )
    async with database.read() as conn:
        row = (await conn.execute(query)).first()
    return from_row(JobRecord, row) if row else None


async def list_jobs(
    database: Database,
    *,
    project_id: str,
    after: str | None = None,
    limit: int = 20,
    status: str | None = None,
) -> tuple[list[JobRecord], bool]:
    """A page of jobs, newest first."""
    query = select(generation_jobs).where(generation_jobs.c.project_id == project_id)
    if status is not None:
        query = query.where(generation_jobs.c.status == status)
    async with database.read() as conn:
        if after is not None:
            cursor = select(generation_jobs.c.seq).where(generation_jobs.c.id == after)
            seq = await conn.scalar(cursor)
            if seq is None:
                return [], False
            query = query.where(generation_jobs.c.seq < seq)
        query = query.order_by(generation_jobs.c.seq.desc()).limit(limit + 1)
        rows = (await conn.execute(query)).all()
    return [from_row(JobRecord, r) for r in rows[:limit]], len(rows) > limit


async def finish_job(
    database: Database,
    job_id: str,
    status: str,
    *,
    now: float,
    stop_reason: str | None = None,
    error: str | None = None,
) -> JobRecord | None:
    """End a running job with ``status`` (a completed one has its open requests closed);
    the job as it is now, which is unchanged when it was not running."""
    async with database.write() as conn:
        await _set_status(
            conn,
            job_id,
            status,
            now=now,
            only_from=[RUNNABLE],
            stop_reason=stop_reason,
            error=error,
        )
        if status == "completed":
            await _close_open_requests(conn, job_id)
        return await _get_job(conn, job_id)


@dataclass(frozen=True, slots=True)
class JobStop:
    """What `stop_job` did: the job as it is now; ``stopped`` when this call stopped it,
    and then the batches holding its open requests (to cancel)."""

    job: JobRecord
    stopped: bool
    batch_ids: list[str] = field(default_factory=list)


async def stop_job(
    database: Database, job_id: str, *, project_id: str, now: float
) -> JobStop | None:
    """Stop a running job of the project; a job not running is left as it is. None when the
    project has no such job."""
    async with database.write() as conn:
        job = await _get_job(conn, job_id, project_id=project_id)
        if job is None or job.status != RUNNABLE:
            return None if job is None else JobStop(job, stopped=False)
        await _set_status(
            conn, job_id, "stopped", now=now, only_from=[RUNNABLE], stop_reason="stopped"
        )
        batch_ids = await _open_batches(conn, job_id)
        job = await _get_job(conn, job_id, project_id=project_id)
    assert job is not None  # jobs are never deleted
    return JobStop(job, stopped=True, batch_ids=batch_ids)


async def resume_job(
    database: Database,
    job_id: str,
    *,
    project_id: str,
    budget: dict[str, Any],
    resumable: Sequence[str],
    now: float,
) -> JobRecord | None:
    """Give a job of the project the ``budget`` fields set (``usd``, ``requests``,
    ``seconds``) and run it again if its status is one of ``resumable``; the job as it is
    now, None when the project has no such job."""
    async with database.write() as conn:
        job = await _get_job(conn, job_id, project_id=project_id)
        if job is None:
            return None
        await _update_budget(conn, job_id, **budget)
        if job.status in resumable:
            await _set_status(conn, job_id, RUNNABLE, now=now, only_from=resumable)
        return await _get_job(conn, job_id, project_id=project_id)


async def _set_status(
    conn: AsyncConnection,
    job_id: str,
    status: str,
    *,
    now: float,
    only_from: Sequence[str] | None = None,
    stop_reason: str | None = None,
    error: str | None = None,
    **values: Any,
) -> bool:
    """Move a job to ``status`` (from one of ``only_from``); False when it was not there."""
    statement = update(generation_jobs).where(generation_jobs.c.id == job_id)
    if only_from is not None:
        statement = statement.where(generation_jobs.c.status.in_(list(only_from)))
    terminal = status != RUNNABLE
    result = await conn.execute(
        statement.values(
            status=status,
            stop_reason=stop_reason,
            error=error,
            updated_at=now,
            finished_at=now if terminal else None,
            **values,
        )
    )
    return bool(result.rowcount)


async def _update_budget(conn: AsyncConnection, job_id: str, **budget: Any) -> None:
    values = {f"budget_{name}": value for name, value in budget.items()}
    if values:
        await conn.execute(
            update(generation_jobs).where(generation_jobs.c.id == job_id).values(**values)
        )


# -- claims and runs --------------------------------------------------------------------------


async def claim_job(
    database: Database,
    *,
    worker_id: str,
    now: float,
    job_id: str | None = None,
    job_ids: Sequence[str] | None = None,
) -> JobRecord | None:
    """Make ``worker_id`` the one driving a running job that no running worker holds (or
    ``job_id``'s): one claim statement (`leasing.claim_rows`). Opens a run in
    `generation_runs`. The claim lasts while the worker's heartbeat does."""
    # Normally `leasing.release_dead_workers` freed a dead worker's jobs already; a worker
    # that stopped (cleanly, or its runner lost the store first) frees them here at once.
    gone = select(workers.c.id).where(workers.c.status != "running")
    conditions: list[ColumnElement[bool]] = [
        generation_jobs.c.runner.is_(None),
        generation_jobs.c.runner.in_(gone.scalar_subquery()),
    ]
    if job_id is not None:
        # Asked for by name: a job this worker holds already is taken again (a restart).
        conditions.append(generation_jobs.c.runner == worker_id)
    free = [generation_jobs.c.status == RUNNABLE, or_(*conditions)]
    candidates = select(generation_jobs.c.id).where(*free)
    if job_id is not None:
        candidates = candidates.where(generation_jobs.c.id == job_id)
    if job_ids is not None:
        candidates = candidates.where(generation_jobs.c.id.in_(list(job_ids)))
    candidates = candidates.order_by(generation_jobs.c.seq).limit(1)
    statement = claim_rows(
        database.dialect,
        generation_jobs,
        candidates=candidates,
        still=free,
        values={"runner": worker_id, "run_started_at": now, "updated_at": now},
    )
    # A read first: workers ask every second, and most of the time there is nothing to
    # claim; a write transaction each time would hold SQLite's one write lock for nothing.
    async with database.read() as conn:
        if (await conn.execute(candidates)).first() is None:
            return None
    async with database.write() as conn:
        row = (await conn.execute(statement)).first()
        if row is None:
            return None
        job = from_row(JobRecord, row)
        await conn.execute(
            update(generation_runs)
            .where(generation_runs.c.job_id == job.id, generation_runs.c.ended_at.is_(None))
            .values(ended_at=now, outcome="lost")
        )
        await conn.execute(
            insert(generation_runs).values(
                job_id=job.id, runner=worker_id, started_at=now, accepted_before=job.accepted
            )
        )
    return job


async def claimed_job(database: Database, job_id: str, *, worker_id: str) -> JobRecord | None:
    """The job, while ``worker_id`` still holds it and it runs; None when the worker lost it
    (declared dead and taken over) or the job was stopped. Nothing to renew: the worker's
    heartbeat keeps the claim."""
    query = select(generation_jobs).where(
        generation_jobs.c.id == job_id,
        generation_jobs.c.runner == worker_id,
        generation_jobs.c.status == RUNNABLE,
    )
    async with database.read() as conn:
        row = (await conn.execute(query)).first()
    return from_row(JobRecord, row) if row else None


async def release_job(
    database: Database, job_id: str, *, worker_id: str, now: float, outcome: str
) -> None:
    """End this worker's run: give the claim back and add the run's time to ``elapsed``."""
    async with database.write() as conn:
        job = await _get_job(conn, job_id)
        if job is None:
            return
        mine = job.runner == worker_id
        if mine:
            ran = max(0.0, now - (job.run_started_at or now))
            await conn.execute(
                update(generation_jobs)
                .where(generation_jobs.c.id == job_id, generation_jobs.c.runner == worker_id)
                .values(
                    runner=None,
                    run_started_at=None,
                    elapsed=generation_jobs.c.elapsed + ran,
                    updated_at=now,
                )
            )
        await conn.execute(
            update(generation_runs)
            .where(
                generation_runs.c.job_id == job_id,
                generation_runs.c.runner == worker_id,
                generation_runs.c.ended_at.is_(None),
            )
            .values(ended_at=now, outcome=outcome, accepted_after=job.accepted)
        )


async def list_runs(database: Database, job_id: str) -> list[RunRecord]:
    query = (
        select(generation_runs)
        .where(generation_runs.c.job_id == job_id)
        .order_by(generation_runs.c.seq)
    )
    async with database.read() as conn:
        return [from_row(RunRecord, row) for row in await conn.execute(query)]


# -- cells ------------------------------------------------------------------------------------


async def list_cells(database: Database, job_id: str) -> list[CellRecord]:
    """Every cell of the job in spec order, with its requests in flight and rejections."""
    async with database.read() as conn:
        return await _list_cells(conn, job_id)


async def get_job_with_cells(
    database: Database, job_id: str, *, project_id: str | None = None
) -> tuple[JobRecord, list[CellRecord]] | None:
    """A job and its cells (`list_cells`), read in one snapshot, so they agree."""
    async with database.read() as conn:
        job = await _get_job(conn, job_id, project_id=project_id)
        return None if job is None else (job, await _list_cells(conn, job_id))


async def _list_cells(conn: AsyncConnection, job_id: str) -> list[CellRecord]:
    reasons: dict[tuple[str, str], dict[str, int]] = {}
    query = select(generation_rejections).where(generation_rejections.c.job_id == job_id)
    cells = select(generation_cells).where(generation_cells.c.job_id == job_id)
    open_counts = await _in_flight(conn, job_id)
    for row in await conn.execute(query):
        cell = reasons.setdefault((row.topic, row.sample_type), {})
        cell[row.reason] = int(row._mapping["count"])
    rows = (await conn.execute(cells.order_by(generation_cells.c.position))).all()
    return [
        CellRecord(
            topic=row.topic,
            sample_type=row.sample_type,
            position=row.position,
            target=row.target,
            accepted=row.accepted,
            rejected=row.rejected,
            duplicates=row.duplicates,
            surplus=row.surplus,
            requests=row.requests,
            cost=float(row.cost),
            in_flight=open_counts.get((row.topic, row.sample_type), 0),
            rejections=reasons.get((row.topic, row.sample_type), {}),
        )
        for row in rows
    ]


async def job_targets(database: Database, job_ids: Sequence[str]) -> dict[str, int]:
    """Each job's total target (the sum over its cells)."""
    if not job_ids:
        return {}
    query = (
        select(generation_cells.c.job_id, func.sum(generation_cells.c.target))
        .where(generation_cells.c.job_id.in_(list(job_ids)))
        .group_by(generation_cells.c.job_id)
    )
    async with database.read() as conn:
        return {row[0]: int(row[1] or 0) for row in await conn.execute(query)}


async def _in_flight(conn: AsyncConnection, job_id: str) -> dict[tuple[str, str], int]:
    """Requests of the job not done yet, per cell (queued judge requests included)."""
    query = (
        select(generation_requests.c.topic, generation_requests.c.sample_type, func.count())
        .where(generation_requests.c.job_id == job_id, generation_requests.c.state != "done")
        .group_by(generation_requests.c.topic, generation_requests.c.sample_type)
    )
    return {(row[0], row[1]): int(row[2]) for row in await conn.execute(query)}


# -- requests ---------------------------------------------------------------------------------


async def add_batch_requests(
    database: Database,
    job_id: str,
    batch_id: str,
    *,
    issued: Sequence[IssuedRequest] = (),
    judged: Sequence[tuple[int, str]] = (),
) -> None:
    """Record as the job's, in one transaction, the requests of a batch it created:
    ``issued`` new ones, and ``judged`` queued judge requests now in it (`open_judgements`)."""
    async with database.write() as conn:
        if issued:
            await _add_requests(conn, job_id, batch_id, issued)
        if judged:
            await _open_judgements(conn, job_id, batch_id, judged)


async def _add_requests(
    conn: AsyncConnection, job_id: str, batch_id: str, issued: Sequence[IssuedRequest]
) -> None:
    """Record the requests of a batch the job just created, as open; counts them."""
    rows = [
        {
            "job_id": job_id,
            "topic": r.topic,
            "sample_type": r.sample_type,
            "kind": r.kind,
            "state": "open",
            "batch_id": batch_id,
            "custom_id": r.custom_id,
            "candidate": r.candidate,
        }
        for r in issued
    ]
    for start in range(0, len(rows), 500):
        await conn.execute(insert(generation_requests), rows[start : start + 500])
    per_cell: dict[tuple[str, str], int] = {}
    for r in issued:
        per_cell[(r.topic, r.sample_type)] = per_cell.get((r.topic, r.sample_type), 0) + 1
    for (topic, sample_type), count in per_cell.items():
        await conn.execute(
            update(generation_cells)
            .where(_cell(job_id, topic, sample_type))
            .values(requests=generation_cells.c.requests + count)
        )
    await conn.execute(
        update(generation_jobs)
        .where(generation_jobs.c.id == job_id)
        .values(requests=generation_jobs.c.requests + len(rows))
    )


async def queued_judgements(
    database: Database, job_id: str, limit: int
) -> list[tuple[int, str, str, dict[str, Any]]]:
    """Candidates waiting for a judge's batch: (request id, topic, type, candidate)."""
    query = (
        select(
            generation_requests.c.id,
            generation_requests.c.topic,
            generation_requests.c.sample_type,
            generation_requests.c.candidate,
        )
        .where(generation_requests.c.job_id == job_id, generation_requests.c.state == "queued")
        .order_by(generation_requests.c.id)
        .limit(limit)
    )
    async with database.read() as conn:
        return [(r.id, r.topic, r.sample_type, r.candidate) for r in await conn.execute(query)]


async def _open_judgements(
    conn: AsyncConnection, job_id: str, batch_id: str, rows: Sequence[tuple[int, str]]
) -> None:
    """Queued judge requests now in ``batch_id``: (request id, custom id) each."""
    for request_id, custom_id in rows:
        await conn.execute(
            update(generation_requests)
            .where(generation_requests.c.id == request_id, generation_requests.c.state == "queued")
            .values(state="open", batch_id=batch_id, custom_id=custom_id)
        )
    await conn.execute(
        update(generation_jobs)
        .where(generation_jobs.c.id == job_id)
        .values(requests=generation_jobs.c.requests + len(rows))
    )


async def new_answers(database: Database, job_id: str, *, limit: int) -> list[Answer]:
    """Up to ``limit`` answers to use: the job's open requests whose batch recorded a
    result (`_answered`), then those whose batch ended without one (`_lost_requests`)."""
    async with database.read() as conn:
        answers = await _answered(conn, job_id, limit=limit)
        if len(answers) < limit:
            answers += await _lost_requests(conn, job_id, limit=limit - len(answers))
    return answers


async def _answered(conn: AsyncConnection, job_id: str, *, limit: int) -> list[Answer]:
    """Open requests of the job whose batch has recorded their result, oldest first."""
    query = (
        select(
            generation_requests.c.id.label("request_id"),
            generation_requests.c.topic,
            generation_requests.c.sample_type,
            generation_requests.c.kind,
            generation_requests.c.batch_id,
            generation_requests.c.custom_id,
            generation_requests.c.candidate,
            results.c.ok,
            results.c.body,
            requests.c.body.label("request_body"),
            results.c.error_code,
            results.c.error_message,
            results.c.deployment,
            results.c.model,
            results.c.input_tokens,
            results.c.output_tokens,
            results.c.cost,
        )
        .select_from(
            generation_requests.join(
                requests,
                and_(
                    requests.c.batch_id == generation_requests.c.batch_id,
                    requests.c.custom_id == generation_requests.c.custom_id,
                ),
            ).join(results, results.c.request_id == requests.c.id)
        )
        .where(generation_requests.c.job_id == job_id, generation_requests.c.state == "open")
        .order_by(generation_requests.c.id)
        .limit(limit)
    )
    result: Any = await conn.execute(query)  # 17 columns: past Row's typed arity
    return [from_row(Answer, row) for row in result]


async def _lost_requests(conn: AsyncConnection, job_id: str, *, limit: int) -> list[Answer]:
    """Open requests whose batch ended (or is gone) without a result for them: a batch
    cancelled or expired, or failed in validation. Reported as failed answers."""
    ended = ("completed", "failed", "expired", "cancelled")
    has_result = (
        select(results.c.request_id)
        .select_from(requests.join(results, results.c.request_id == requests.c.id))
        .where(
            requests.c.batch_id == generation_requests.c.batch_id,
            requests.c.custom_id == generation_requests.c.custom_id,
        )
        .exists()
    )
    batch_status = (
        select(batches.c.status).where(batches.c.id == generation_requests.c.batch_id)
    ).scalar_subquery()
    query = (
        select(generation_requests)
        .where(
            generation_requests.c.job_id == job_id,
            generation_requests.c.state == "open",
            or_(batch_status.in_(ended), batch_status.is_(None)),
            ~has_result,
        )
        .limit(limit)
    )
    return [
        Answer(
            request_id=row.id,
            topic=row.topic,
            sample_type=row.sample_type,
            kind=row.kind,
            batch_id=row.batch_id or "",
            custom_id=row.custom_id or "",
            ok=False,
            body=None,
            request_body=b"",
            error_code="no_result",
            error_message="the batch ended without a result for this request",
            deployment=None,
            model=None,
            input_tokens=0,
            output_tokens=0,
            cost=0.0,
            candidate=row.candidate,
        )
        for row in await conn.execute(query)
    ]


async def open_batches(database: Database, job_id: str) -> list[str]:
    """The batches holding the job's open requests."""
    async with database.read() as conn:
        return await _open_batches(conn, job_id)


async def _open_batches(conn: AsyncConnection, job_id: str) -> list[str]:
    query = (
        select(generation_requests.c.batch_id)
        .where(
            generation_requests.c.job_id == job_id,
            generation_requests.c.state == "open",
            generation_requests.c.batch_id.is_not(None),
        )
        .distinct()
    )
    return [row[0] for row in await conn.execute(query)]


# -- the quota transaction --------------------------------------------------------------------


def _cell(job_id: str, topic: str, sample_type: str) -> Any:
    return and_(
        generation_cells.c.job_id == job_id,
        generation_cells.c.topic == topic,
        generation_cells.c.sample_type == sample_type,
    )


async def record_outcomes(
    database: Database,
    *,
    job_id: str,
    dataset_id: str,
    outcomes: Sequence[Outcome],
    now: float,
) -> list[Recorded]:
    """Record what became of answers, in one transaction (see the module's guarantees). An
    outcome whose request is done already (another runner recorded it) is ``stale`` and
    changes nothing."""
    if not outcomes:
        return []
    async with database.write() as conn:
        return await _record_outcomes(
            conn, job_id=job_id, dataset_id=dataset_id, outcomes=outcomes, now=now
        )


async def _record_outcomes(
    conn: AsyncConnection,
    *,
    job_id: str,
    dataset_id: str,
    outcomes: Sequence[Outcome],
    now: float,
) -> list[Recorded]:
    await _lock_dataset(conn, dataset_id)
    ids = [o.request_id for o in outcomes]
    still_open: set[int] = set()
    for start in range(0, len(ids), 500):
        closed = await conn.execute(
            update(generation_requests)
            .where(
                generation_requests.c.id.in_(ids[start : start + 500]),
                generation_requests.c.state != "done",
            )
            .values(state="done", candidate=None)
            .returning(generation_requests.c.id)
        )
        still_open.update(closed.scalars())
    recorded: list[Recorded] = []
    totals = {"accepted": 0, "rejected": 0, "duplicates": 0, "surplus": 0, "cost": 0.0}
    for outcome in outcomes:
        if outcome.request_id not in still_open:
            recorded.append(Recorded(outcome.request_id, "stale"))
            continue
        done = await _record_one(conn, job_id, dataset_id, outcome, now)
        recorded.append(done)
        totals["cost"] += outcome.cost
        key = {"accepted": "accepted", "duplicate": "duplicates", "surplus": "surplus"}
        if done.result in key:
            totals[key[done.result]] += 1
        if done.result == "rejected":
            totals["rejected"] += 1
    progressed = any(r.result != "stale" for r in recorded)
    await conn.execute(
        update(generation_jobs)
        .where(generation_jobs.c.id == job_id)
        .values(
            accepted=generation_jobs.c.accepted + totals["accepted"],
            rejected=generation_jobs.c.rejected + totals["rejected"],
            duplicates=generation_jobs.c.duplicates + totals["duplicates"],
            surplus=generation_jobs.c.surplus + totals["surplus"],
            cost=generation_jobs.c.cost + totals["cost"],
            progress_at=now if progressed else generation_jobs.c.progress_at,
            updated_at=now,
        )
    )
    return recorded


async def _record_one(
    conn: AsyncConnection, job_id: str, dataset_id: str, outcome: Outcome, now: float
) -> Recorded:
    cell = _cell(job_id, outcome.topic, outcome.sample_type)
    if outcome.cost:
        await conn.execute(
            update(generation_cells).where(cell).values(cost=generation_cells.c.cost + outcome.cost)
        )
    if outcome.action == "judge":
        await conn.execute(
            insert(generation_requests).values(
                job_id=job_id,
                topic=outcome.topic,
                sample_type=outcome.sample_type,
                kind="judge",
                state="queued",
                candidate=outcome.candidate,
            )
        )
        return Recorded(outcome.request_id, "judge")
    if outcome.action == "reject":
        await _reject(conn, job_id, outcome.topic, outcome.sample_type, outcome.reason or "")
        return Recorded(outcome.request_id, "rejected", reason=outcome.reason)
    assert outcome.sample is not None
    took = await conn.execute(
        update(generation_cells)
        .where(cell, generation_cells.c.accepted < generation_cells.c.target)
        .values(accepted=generation_cells.c.accepted + 1)
    )
    if not took.rowcount:
        await conn.execute(
            update(generation_cells).where(cell).values(surplus=generation_cells.c.surplus + 1)
        )
        return Recorded(outcome.request_id, "surplus", reason="surplus")
    (sample_id,) = await _insert_samples(conn, dataset_id, [outcome.sample], now=now)
    if sample_id is None:
        # The dataset holds this content already: the place goes back.
        await conn.execute(
            update(generation_cells)
            .where(cell)
            .values(
                accepted=generation_cells.c.accepted - 1,
                duplicates=generation_cells.c.duplicates + 1,
            )
        )
        await _reject(conn, job_id, outcome.topic, outcome.sample_type, "duplicate", count=False)
        return Recorded(outcome.request_id, "duplicate", reason="duplicate")
    return Recorded(outcome.request_id, "accepted", sample_id=sample_id)


async def _reject(
    conn: AsyncConnection,
    job_id: str,
    topic: str,
    sample_type: str,
    reason: str,
    *,
    count: bool = True,
) -> None:
    if count:
        await conn.execute(
            update(generation_cells)
            .where(_cell(job_id, topic, sample_type))
            .values(rejected=generation_cells.c.rejected + 1)
        )
    insert_ = upsert_insert(conn.dialect.name)
    statement = insert_(generation_rejections).values(
        job_id=job_id, topic=topic, sample_type=sample_type, reason=reason, count=1
    )
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=["job_id", "topic", "sample_type", "reason"],
            set_={"count": generation_rejections.c.count + 1},
        )
    )


async def stuck_jobs(
    database: Database, *, project_id: str, now: float, stuck_after: float
) -> list[JobRecord]:
    """Running jobs with no accepted or rejected answer for ``stuck_after`` seconds (since
    their creation when they never had one)."""
    last = func.coalesce(generation_jobs.c.progress_at, generation_jobs.c.created_at)
    query = select(generation_jobs).where(
        generation_jobs.c.project_id == project_id,
        generation_jobs.c.status == RUNNABLE,
        last < now - stuck_after,
    )
    async with database.read() as conn:
        return [from_row(JobRecord, row) for row in await conn.execute(query)]


async def orphan_batches(database: Database, job_id: str, *, project_id: str) -> list[str]:
    """Batches created for the job (idempotency key ``gen:<job>:...``) whose requests were
    never recorded as the job's: a runner died between creating one and recording it."""
    prefix = f"gen:{job_id}:"
    known = select(generation_requests.c.id).where(generation_requests.c.batch_id == batches.c.id)
    query = (
        select(batches.c.id)
        .where(
            batches.c.project_id == project_id,
            batches.c.idempotency_key.like(prefix.replace("_", r"\_") + "%", escape="\\"),
            ~known.exists(),
        )
        .order_by(batches.c.seq)
    )
    async with database.read() as conn:
        return [row[0] for row in await conn.execute(query)]


async def batch_custom_ids(database: Database, batch_id: str) -> list[str]:
    query = select(requests.c.custom_id).where(requests.c.batch_id == batch_id)
    async with database.read() as conn:
        return [row[0] for row in await conn.execute(query.order_by(requests.c.line))]


async def _close_open_requests(conn: AsyncConnection, job_id: str) -> int:
    """Mark every request of a finished job done (their answers are no longer needed)."""
    result = await conn.execute(
        update(generation_requests)
        .where(generation_requests.c.job_id == job_id, generation_requests.c.state != "done")
        .values(state="done", candidate=None)
    )
    return int(result.rowcount or 0)
