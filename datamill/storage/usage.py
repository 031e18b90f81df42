"""Usage and cost: the gateway's calls as they end, and totals over batches and the gateway.

Batch requests are accounted in ``results`` (each with its tokens, cost and the model it asked
for) and the batch counters; gateway calls in ``gateway_calls``. `usage_totals` adds both up
over a time window, grouped by model (the name clients asked for: an alias totals every
deployment behind it), deployment, batch or day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from enum import StrEnum
from typing import Any

from sqlalchemy import Float, Integer, String, and_, case, cast, func, literal, select, union_all

from datamill.storage.database import Database
from datamill.storage.pruning import Pruned, prune_before
from datamill.storage.schema import batches, gateway_calls, results


@dataclass(frozen=True, slots=True)
class GatewayCallRow:
    """One row of ``gateway_calls``."""

    project_id: str
    model: str
    deployment: str | None
    endpoint: str
    stream: bool
    ok: bool
    error_code: str | None
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost: float
    latency_ms: float
    first_token_ms: float | None
    created_at: float
    key_id: str | None = None


_CALL_COLUMNS = tuple(f.name for f in fields(GatewayCallRow))
_INSERT_CALLS = (
    f"INSERT INTO gateway_calls ({', '.join(_CALL_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_CALL_COLUMNS))})"
)
_INSERT_CALLS_PG = (
    f"INSERT INTO gateway_calls ({', '.join(_CALL_COLUMNS)}) "
    f"VALUES ({', '.join(f'${n}' for n in range(1, len(_CALL_COLUMNS) + 1))})"
)


async def record_gateway_calls(database: Database, rows: Sequence[GatewayCallRow]) -> None:
    """Insert gateway calls in one relaxed transaction (accounting, redone on nothing)."""
    if not rows:
        return
    statement = _INSERT_CALLS_PG if database.dialect == "postgresql" else _INSERT_CALLS
    async with database.write(relaxed=True) as conn:
        await conn.exec_driver_sql(statement, [astuple(row) for row in rows])


class UsageGroup(StrEnum):
    """What usage totals are grouped by."""

    model = "model"  # the model name asked for: an alias totals all its deployments
    deployment = "deployment"
    batch = "batch"  # batch requests only
    day = "day"  # UTC days, as the Unix time of their start
    source = "source"  # batch or gateway


@dataclass(frozen=True, slots=True)
class UsageRow:
    key: str | None
    source: str  # batch or gateway
    requests: int
    failed: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost: float


_DAY = 86_400


async def usage_totals(
    database: Database,
    *,
    project_id: str,
    group_by: UsageGroup,
    since: float,
    until: float,
) -> list[UsageRow]:
    """Requests, tokens and cost between ``since`` and ``until`` (Unix times), per group and
    source, largest cost first."""
    finished = results.c.finished_at
    key = _key(group_by, database.dialect, results, finished, batch=results.c.batch_id)
    batch_part = (
        select(key.label("key"), literal("batch", String).label("source"), *_sums(results))
        .select_from(results.join(batches, batches.c.id == results.c.batch_id))
        .where(and_(batches.c.project_id == project_id, finished >= since, finished < until))
        .group_by(key)
    )
    parts = [batch_part]
    if group_by is not UsageGroup.batch:
        created = gateway_calls.c.created_at
        key = _key(group_by, database.dialect, gateway_calls, created, batch=None)
        parts.append(
            select(
                key.label("key"), literal("gateway", String).label("source"), *_sums(gateway_calls)
            )
            .where(
                and_(gateway_calls.c.project_id == project_id, created >= since, created < until)
            )
            .group_by(key)
        )
    combined = union_all(*parts).subquery()
    query = select(combined).order_by(combined.c.cost.desc(), combined.c.key)
    async with database.read() as conn:
        rows = (await conn.execute(query)).all()
    return [_row(row) for row in rows]


def _key(group_by: UsageGroup, dialect: str, table: Any, moment: Any, *, batch: Any) -> Any:
    if group_by is UsageGroup.model:
        column = table.c.model
    elif group_by is UsageGroup.deployment:
        column = table.c.deployment
    elif group_by is UsageGroup.batch:
        column = batch
    elif group_by is UsageGroup.day:
        # Whole days: SQLite's CAST truncates, PostgreSQL's rounds, so floor() there.
        days = cast(moment / _DAY, Integer) if dialect == "sqlite" else func.floor(moment / _DAY)
        column = cast(days * _DAY, String)
    else:
        column = literal("batch" if batch is not None else "gateway", String)
    return column


def _sums(table: Any) -> list[Any]:
    return [
        func.count().label("requests"),
        func.coalesce(func.sum(case((table.c.ok, 0), else_=1)), 0).label("failed"),
        func.coalesce(func.sum(table.c.input_tokens), 0).label("input_tokens"),
        func.coalesce(func.sum(table.c.cached_tokens), 0).label("cached_tokens"),
        func.coalesce(func.sum(table.c.output_tokens), 0).label("output_tokens"),
        func.coalesce(func.sum(table.c.reasoning_tokens), 0).label("reasoning_tokens"),
        func.coalesce(func.sum(cast(table.c.cost, Float)), 0.0).label("cost"),
    ]


def _row(row: Any) -> UsageRow:
    return UsageRow(
        key=row.key,
        source=row.source,
        requests=int(row.requests),
        failed=int(row.failed),
        input_tokens=int(row.input_tokens),
        cached_tokens=int(row.cached_tokens),
        output_tokens=int(row.output_tokens),
        reasoning_tokens=int(row.reasoning_tokens),
        cost=float(row.cost),
    )


async def prune_gateway_calls(database: Database, *, before: float, max_rows: int) -> Pruned:
    """Delete gateway calls logged before ``before`` (retention), in bounded chunks. Usage
    totals over those times then count batch requests only."""
    return await prune_before(
        database,
        gateway_calls,
        key=gateway_calls.c.id,
        stamp=gateway_calls.c.created_at,
        before=before,
        max_rows=max_rows,
    )
