"""Recording results, exactly once, and reading them back for output files.

`record_results` inserts results with ``ON CONFLICT DO NOTHING``: the primary key on
``request_id`` makes the first answer win, so a late answer from a lost lease, or a flush
retried after an error, never creates a second line. The batch counters move in the same
transaction by exactly the rows inserted, so ``completed + failed`` always equals the
number of results.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from sqlalchemy import text

from datamill.storage.database import Database
from datamill.storage.records import RequestResult
from datamill.storage.sqlite_thread import placeholders

_RESULT_FIELDS = tuple(f.name for f in fields(RequestResult))
_COLUMNS = ", ".join(_RESULT_FIELDS)

# The hot path talks to the drivers directly (`exec_driver_sql`): building SQLAlchemy
# parameter dicts for every column of every row cost more than the database work.
# SQLite: this transaction holds the only write lock, so the results already recorded can
# be read first and the rest inserted with one executemany, without conflicts.
_SQLITE_INSERT = f"INSERT INTO results ({_COLUMNS}) VALUES ({', '.join('?' * len(_RESULT_FIELDS))})"
# PostgreSQL: writers run concurrently, so the primary key decides; one statement over
# arrays, returning the rows it inserted.
_PG_TYPES = {
    "request_id": "bigint",
    "batch_id": "text",
    "line": "integer",
    "custom_id": "text",
    "ok": "boolean",
    "status_code": "integer",
    "body": "bytea",
    "provider_request_id": "text",
    "error_code": "text",
    "error_message": "text",
    "deployment": "text",
    "attempts": "integer",
    "input_tokens": "integer",
    "cached_tokens": "integer",
    "output_tokens": "integer",
    "reasoning_tokens": "integer",
    "finished_at": "float8",
    "native": "boolean",
    "model": "text",
    "cost": "float8",
}
_PG_INSERT = (
    f"INSERT INTO results ({_COLUMNS}) SELECT * FROM unnest("
    + ", ".join(f"${n}::{_PG_TYPES[name]}[]" for n, name in enumerate(_RESULT_FIELDS, 1))
    + ") ON CONFLICT (request_id) DO NOTHING RETURNING request_id"
)
_PG_MARK_DONE = (
    "UPDATE requests SET state = 'done', lease_owner = NULL WHERE id = ANY($1::bigint[])"
)

_MAX_IN = 10_000

_TALLY_SQL = """
    UPDATE batches SET
        completed_count = completed_count + :completed,
        failed_count = failed_count + :failed,
        input_tokens = input_tokens + :input_tokens,
        cached_tokens = cached_tokens + :cached_tokens,
        output_tokens = output_tokens + :output_tokens,
        reasoning_tokens = reasoning_tokens + :reasoning_tokens,
        cost = cost + :cost,
        progress_at = :now
    WHERE id = :batch
"""
_COUNT = text(_TALLY_SQL)  # the sqlite3 module takes the same named parameters as it is


@dataclass(slots=True)
class BatchTally:
    completed: int = 0
    failed: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float = 0.0

    def add(self, result: RequestResult) -> None:
        if result.ok:
            self.completed += 1
        else:
            self.failed += 1
        self.input_tokens += result.input_tokens
        self.cached_tokens += result.cached_tokens
        self.output_tokens += result.output_tokens
        self.reasoning_tokens += result.reasoning_tokens
        self.cost += result.cost


@dataclass(slots=True)
class RecordOutcome:
    """What a flush changed: accepted results by batch; the rest were already recorded."""

    accepted: int = 0
    duplicates: int = 0
    by_batch: dict[str, BatchTally] = field(default_factory=dict)


async def record_results(
    database: Database, batch: Sequence[RequestResult], *, now: float
) -> RecordOutcome:
    """Record final results in one transaction; idempotent per request."""
    outcome = RecordOutcome()
    if not batch:
        return outcome
    # One row per request (the first answer in the flush wins, as across flushes), in id
    # order: concurrent flushes then take their row locks in the same order and cannot
    # deadlock on PostgreSQL.
    firsts: dict[int, RequestResult] = {}
    for result in batch:
        firsts.setdefault(result.request_id, result)
    unique = sorted(firsts.values(), key=lambda result: result.request_id)
    ids = [result.request_id for result in unique]
    if database.dialect == "postgresql":
        async with database.write(relaxed=True) as conn:
            inserted = set((await conn.exec_driver_sql(_PG_INSERT, _columns(unique))).scalars())
            # Every request in the flush is done: this flush or an earlier one recorded it.
            await conn.exec_driver_sql(_PG_MARK_DONE, (ids,))
            tallies = _tallies(unique, inserted)
            if tallies:
                await conn.execute(_COUNT, _count_rows(tallies, now))
    else:
        inserted, tallies = await database.write_sqlite(
            lambda conn: _record_sqlite(conn, unique, ids, now)
        )
    outcome.accepted = len(inserted)
    outcome.duplicates = len(batch) - len(inserted)
    outcome.by_batch = tallies
    return outcome


def _record_sqlite(
    conn: sqlite3.Connection, unique: list[RequestResult], ids: list[int], now: float
) -> tuple[set[int], dict[str, BatchTally]]:
    """SQLite's transaction (one trip to the store's thread): this transaction holds the
    only write lock, so the results already recorded are read first and the rest inserted
    with one executemany, without conflicts."""
    recorded: set[int] = set()
    for part in _parts(ids):
        marks = placeholders(part)
        recorded.update(
            row[0]
            for row in conn.execute(
                f"SELECT request_id FROM results WHERE request_id IN ({marks})", part
            )
        )
        conn.execute(
            f"UPDATE requests SET state = 'done', lease_owner = NULL WHERE id IN ({marks})", part
        )
    fresh = [result for result in unique if result.request_id not in recorded]
    if fresh:
        conn.executemany(
            _SQLITE_INSERT, [tuple(getattr(r, name) for name in _RESULT_FIELDS) for r in fresh]
        )
    inserted = {result.request_id for result in fresh}
    tallies = _tallies(unique, inserted)
    if tallies:
        conn.executemany(_TALLY_SQL, _count_rows(tallies, now))
    return inserted, tallies


def _parts(ids: list[int]) -> Iterator[list[int]]:
    """``ids`` in slices SQLite's limit on bound parameters (32,766) lets through."""
    for start in range(0, len(ids), _MAX_IN):
        yield ids[start : start + _MAX_IN]


def _columns(unique: list[RequestResult]) -> tuple[list[Any], ...]:
    """PostgreSQL's insert takes one array per column."""
    return tuple([getattr(r, name) for r in unique] for name in _RESULT_FIELDS)


def _tallies(unique: list[RequestResult], inserted: set[int]) -> dict[str, BatchTally]:
    """What the rows inserted add to each batch's counters."""
    tallies: dict[str, BatchTally] = defaultdict(BatchTally)
    for result in unique:
        if result.request_id in inserted:
            tallies[result.batch_id].add(result)
    return dict(tallies)


def _count_rows(tallies: dict[str, BatchTally], now: float) -> list[dict[str, Any]]:
    # In batch id order: concurrent flushes lock the batch rows in the same order.
    return [{"batch": b, "now": now, **asdict(tallies[b])} for b in sorted(tallies)]


_PAGE_SQL = """
    SELECT line, custom_id, status_code, body, provider_request_id, error_code, error_message
    FROM results WHERE batch_id = {batch} AND ok = {ok} AND line > {after} AND line < {before}
    ORDER BY line LIMIT {limit}
"""
# Straight to the drivers too: output files read every result once.
_PAGE = {
    "sqlite": _PAGE_SQL.format(batch="?", ok="?", after="?", before="?", limit="?"),
    "postgresql": _PAGE_SQL.format(batch="$1", ok="$2", after="$3", before="$4", limit="$5"),
}
_NO_LINE_LIMIT = 2**31 - 1


async def iter_results(
    database: Database,
    batch_id: str,
    *,
    ok: bool,
    after_line: int = -1,
    before_line: int = _NO_LINE_LIMIT,
    page_size: int = 2000,
) -> AsyncIterator[Sequence[Any]]:
    """Yield a batch's successful (or failed) results in line order, one page at a time;
    only lines after ``after_line`` and before ``before_line``.

    Each page is its own short read, so a long download never holds a snapshot open."""
    statement = _PAGE[database.dialect]
    last_line = after_line
    while True:
        async with database.read() as conn:
            result = await conn.exec_driver_sql(
                statement, (batch_id, ok, last_line, before_line, page_size)
            )
            page = result.all()
        if not page:
            return
        yield page
        last_line = page[-1].line
        if len(page) < page_size:
            return


_COUNT_SQL = """
    SELECT count(*) FROM results
    WHERE batch_id = {batch} AND ok = {ok} AND line > {after} AND line < {before}
"""
_COUNT_RANGE = {
    "sqlite": _COUNT_SQL.format(batch="?", ok="?", after="?", before="?"),
    "postgresql": _COUNT_SQL.format(batch="$1", ok="$2", after="$3", before="$4"),
}


async def count_results(
    database: Database, batch_id: str, *, ok: bool, after_line: int, before_line: int
) -> int:
    """How many successful (or failed) results a batch has between two lines (exclusive)."""
    async with database.read() as conn:
        result = await conn.exec_driver_sql(
            _COUNT_RANGE[database.dialect], (batch_id, ok, after_line, before_line)
        )
        return int(result.scalar_one())


@dataclass(frozen=True, slots=True)
class Answer:
    """A succeeded request of a batch with its answer: what a batch import turns into a
    sample (`curation.batch_imports`)."""

    line: int
    custom_id: str
    request: bytes  # the request's body, as sent
    response: bytes | None  # the provider's body, verbatim
    model: str | None
    deployment: str | None
    input_tokens: int
    output_tokens: int
    cost: float


_ANSWERS_SQL = """
    SELECT r.line, r.custom_id, q.body AS request, r.body AS response, r.model, r.deployment,
           r.input_tokens, r.output_tokens, r.cost
    FROM results r JOIN requests q ON q.id = r.request_id
    WHERE r.batch_id = {batch} AND r.ok = {ok} AND r.line > {after}
    ORDER BY r.line LIMIT {limit}
"""
_ANSWERS = {
    "sqlite": _ANSWERS_SQL.format(batch="?", ok="?", after="?", limit="?"),
    "postgresql": _ANSWERS_SQL.format(batch="$1", ok="$2", after="$3", limit="$4"),
}
_HAS_REQUESTS = {
    "sqlite": "SELECT EXISTS (SELECT 1 FROM requests WHERE batch_id = ?)",
    "postgresql": "SELECT EXISTS (SELECT 1 FROM requests WHERE batch_id = $1)",
}


async def iter_answers(
    database: Database, batch_id: str, *, page_size: int = 500
) -> AsyncIterator[list[Answer]]:
    """A batch's succeeded requests with their answers, in line order, a page per read."""
    after = -1
    while True:
        async with database.read() as conn:
            result = await conn.exec_driver_sql(
                _ANSWERS[database.dialect], (batch_id, True, after, page_size)
            )
            page = [Answer(*tuple(row)) for row in result.all()]
        if not page:
            return
        yield page
        after = page[-1].line
        if len(page) < page_size:
            return


async def has_request_rows(database: Database, batch_id: str) -> bool:
    """Whether a batch still has its request rows (retention prunes a finished batch's)."""
    async with database.read() as conn:
        result = await conn.exec_driver_sql(_HAS_REQUESTS[database.dialect], (batch_id,))
        return bool(result.scalar_one())
