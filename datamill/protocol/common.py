"""Shapes shared by every OpenAI list endpoint (openai-python `pagination.py`)."""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class ListObject(BaseModel, Generic[T]):
    """A cursor page: the SDK reads ``data`` and ``has_more``, then asks ``after=last_id``."""

    object: Literal["list"] = "list"
    data: list[T]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False
