"""`GET /openapi.json`: the API's OpenAPI description (public: it holds no data)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from datamill.callers import PUBLIC

router = APIRouter(tags=["health"])


@router.get("/openapi.json", dependencies=[PUBLIC], include_in_schema=False)
async def openapi(request: Request) -> dict[str, Any]:
    """The OpenAPI document FastAPI builds from the routes (built once, then kept)."""
    description: dict[str, Any] = request.app.openapi()
    return description
