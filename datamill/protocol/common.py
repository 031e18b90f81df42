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

    @classmethod
    def page(cls, data: list[T], *, has_more: bool) -> ListObject[T]:
        """A page of objects that have an ``id``; the cursors are the first and last ids."""
        return cls(
            data=data,
            first_id=getattr(data[0], "id", None) if data else None,
            last_id=getattr(data[-1], "id", None) if data else None,
            has_more=has_more,
        )
