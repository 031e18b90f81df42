"""Stored response objects: what GET /v1/responses/{id} reads.

A response is written once, when the gateway answered it (an id seen again, as a passed-
through upstream may reuse one, keeps its first body), and read by id within its project.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from datamill.storage.database import Database, upsert_insert
from datamill.storage.pruning import Pruned, prune_before
from datamill.storage.schema import stored_responses


@dataclass(frozen=True, slots=True)
class StoredResponse:
    id: str
    project_id: str
    model: str  # what the client asked for
    deployment: str | None  # who answered
    body: bytes  # the response object as JSON
    input: bytes  # the input items that led to it, earlier turns included, as a JSON array
    created_at: float


async def save_response(database: Database, response: StoredResponse) -> None:
    """Keep ``response``; a second save of the same id changes nothing."""
    insert = upsert_insert(database.dialect)
    statement = (
        insert(stored_responses)
        .values(
            id=response.id,
            project_id=response.project_id,
            model=response.model,
            deployment=response.deployment,
            body=response.body,
            input=response.input,
            created_at=response.created_at,
        )
        .on_conflict_do_nothing(index_elements=["id"])
    )
    async with database.write() as conn:
        await conn.execute(statement)


async def get_response(
    database: Database, response_id: str, *, project_id: str
) -> StoredResponse | None:
    """The stored response ``response_id``, or None."""
    query = select(stored_responses).where(
        stored_responses.c.id == response_id, stored_responses.c.project_id == project_id
    )
    async with database.read() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        return None
    return StoredResponse(
        id=row.id,
        project_id=row.project_id,
        model=row.model,
        deployment=row.deployment,
        body=bytes(row.body),
        input=bytes(row.input),
        created_at=row.created_at,
    )


async def prune_responses(database: Database, *, before: float, max_rows: int) -> Pruned:
    """Delete responses stored before ``before`` (retention), in bounded chunks: a GET of one
    answers 404, and a request naming it as ``previous_response_id`` goes upstream as is,
    as for any id not kept here."""
    return await prune_before(
        database,
        stored_responses,
        key=stored_responses.c.id,
        stamp=stored_responses.c.created_at,
        before=before,
        max_rows=max_rows,
    )
