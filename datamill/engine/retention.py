"""Retention: what the maintenance sweep deletes once it is old enough to go.

Every kind has its setting (``DATAMILL_RETENTION_*_DAYS``, 0 keeps forever; events have
``DATAMILL_EVENTS_RETENTION``), and each pass deletes a bounded number of rows of each kind
in short transactions (`storage.pruning`), so any number of workers may run it at once and
none holds the store for long. What a batch still needs is never deleted: an unfinished
batch's files and request rows stay whatever their age.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from datamill.engine.context import EngineContext
from datamill.storage import events as event_repo
from datamill.storage import files as file_repo
from datamill.storage.requests import prune_finished_requests
from datamill.storage.responses import prune_responses
from datamill.storage.usage import prune_gateway_calls
from datamill.storage.webhooks import prune_deliveries

log = logging.getLogger("datamill.engine")

DAY = 86_400.0
# Rows of each kind one pass deletes at most (files: files, each with its blob); the rest
# wait for the next pass, which comes at once when a pass stopped at its bound.
MAX_ROWS = 20_000
MAX_FILES = 100


@dataclass(frozen=True, slots=True)
class RetentionPass:
    """What one pass deleted, by kind, and whether any kind has more to delete."""

    files: int = 0
    batch_requests: int = 0
    call_logs: int = 0
    responses: int = 0
    events: int = 0
    webhook_deliveries: int = 0
    more: bool = False


def _cutoff(now: float, days: float) -> float | None:
    """The time before which a kind kept ``days`` days goes; None when kept forever."""
    return now - days * DAY if days > 0 else None


async def apply_retention(ctx: EngineContext, *, now: float) -> RetentionPass:
    """Delete what the retention settings let go, as of ``now``: files past their expiry or
    their retention (rows first, then blobs: a crash in between leaves an unreachable blob,
    never a file without content), finished batches' request rows, gateway call logs,
    stored responses, old events and old webhook deliveries."""
    settings = ctx.settings
    database = ctx.database
    more = False

    file_ids = await file_repo.delete_unneeded_files(
        database,
        now=now,
        created_before=_cutoff(now, settings.retention_files_days),
        limit=MAX_FILES,
    )
    for file_id in file_ids:
        await ctx.blobs.delete(file_id)
    more |= len(file_ids) == MAX_FILES

    batch_requests = call_logs = responses = deliveries = 0
    if (before := _cutoff(now, settings.retention_batch_requests_days)) is not None:
        pruned = await prune_finished_requests(database, finished_before=before, max_rows=MAX_ROWS)
        batch_requests, more = pruned.rows, more or pruned.more
    if (before := _cutoff(now, settings.retention_call_logs_days)) is not None:
        pruned = await prune_gateway_calls(database, before=before, max_rows=MAX_ROWS)
        call_logs, more = pruned.rows, more or pruned.more
    if (before := _cutoff(now, settings.retention_responses_days)) is not None:
        pruned = await prune_responses(database, before=before, max_rows=MAX_ROWS)
        responses, more = pruned.rows, more or pruned.more
    if (before := _cutoff(now, settings.retention_webhook_deliveries_days)) is not None:
        pruned = await prune_deliveries(database, before=before, max_rows=MAX_ROWS)
        deliveries, more = pruned.rows, more or pruned.more
    # A client resuming from a pruned event is told to reload its state.
    events = await event_repo.prune_events(database, before=now - settings.events_retention)

    done = RetentionPass(
        len(file_ids),
        batch_requests,
        call_logs,
        responses,
        events,
        webhook_deliveries=deliveries,
        more=more,
    )
    if file_ids or batch_requests or call_logs or responses or events or deliveries:
        log.info(
            "retention deleted %d files, %d batch request rows, %d call log rows, "
            "%d stored responses, %d events and %d webhook deliveries%s",
            done.files,
            done.batch_requests,
            done.call_logs,
            done.responses,
            done.events,
            done.webhook_deliveries,
            " (more next pass)" if more else "",
        )
    return done
