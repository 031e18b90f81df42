"""One place that renders every API error in OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from datamill.errors import ApiError, StorageError

log = logging.getLogger("datamill.api")


def _body(message: str, *, kind: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _location(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in {"body", "query", "path", "form", "header"}]
    return ".".join(parts) or None


def _message(error: Any) -> str:
    # pydantic prefixes messages from our own validators; the prefix tells a client nothing.
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


async def api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.to_body(), status_code=exc.status_code, headers=exc.headers())


async def validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    param = _location(tuple(first.get("loc", ())))
    problems = "; ".join(
        f"{_location(tuple(e.get('loc', ()))) or 'body'}: {_message(e)}" for e in errors[:5]
    )
    # The codes OpenAI answers with: a field left out is not a field with a bad value.
    code = "missing_required_parameter" if first.get("type") == "missing" else "invalid_value"
    if first.get("type") == "json_invalid":
        problems = f"the request body is not valid JSON ({first.get('msg')})"
        param = None
    return JSONResponse(
        _body(problems, kind="invalid_request_error", param=param, code=code),
        status_code=400,
    )


async def http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    message = str(exc.detail)
    if exc.status_code == 404:
        message = "Unknown route; see /openapi.json for the API"
    elif exc.status_code == 405:
        message = "This route does not accept that HTTP method"
    return JSONResponse(
        _body(message, kind="invalid_request_error", param=None, code=None),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def storage_error(_: Request, exc: Exception) -> JSONResponse:
    log.error("store unavailable: %s", exc)
    return JSONResponse(
        _body(str(exc), kind="server_error", param=None, code="store_unavailable"),
        status_code=503,
    )


async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return JSONResponse(
        _body(
            "datamill hit an internal error; the server log has the details",
            kind="server_error",
            param=None,
            code="internal_error",
        ),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(StorageError, storage_error)
    app.add_exception_handler(Exception, unexpected_error)
