"""Log lines as JSON, and the request id that follows a request into the workers.

`REQUEST_ID` holds the id of the HTTP request being served (set by the API's middleware
from a sane ``X-Request-ID`` header, or made up) or of the batch a worker is working on
(the id its creating request had, stored with the batch): every log line written meanwhile
carries it. Tasks started meanwhile inherit it, as asyncio copies the context.

With ``DATAMILL_LOG_FORMAT=json`` each line is one JSON object: ``time`` (UTC, ISO 8601),
``level``, ``logger``, ``message``, ``request_id`` when there is one, and ``exception``
(the traceback) when one was logged.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

import orjson

REQUEST_ID: ContextVar[str | None] = ContextVar("datamill_request_id", default=None)
REQUEST_ID_HEADER = "X-Request-ID"
# A client's id is kept when it is short and plain (no spaces, quotes or control characters,
# which would break a log line or a header); otherwise the request gets one of ours.
_SANE = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")


def accept_request_id(header: str | None) -> str:
    """The client's request id when sane, else a new one (``req-`` and 24 hex digits)."""
    if header is not None and _SANE.fullmatch(header):
        return header
    return f"req-{secrets.token_hex(12)}"


@contextmanager
def request_id(value: str | None) -> Iterator[None]:
    """``value`` as the request id of everything logged within (None: nothing changes)."""
    if value is None:
        yield
        return
    token = REQUEST_ID.set(value)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (`orjson`: any message text stays one valid line)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = REQUEST_ID.get()
        if current is not None:
            line["request_id"] = current
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()
