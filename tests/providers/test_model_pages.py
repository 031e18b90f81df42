"""The one paging loop of upstream model lists: it follows cursors, and stops however an
upstream misbehaves (an endless list, a page repeated, too many models)."""

from __future__ import annotations

from typing import Any

from datamill.providers.base import MAX_LISTED_MODELS, MAX_MODEL_PAGES
from datamill.providers.model_pages import Page, list_pages


class Pages:
    """An upstream's pages, by cursor; records the cursors it was asked for."""

    def __init__(self, pages: dict[str | None, Page]) -> None:
        self.pages = pages
        self.asked: list[str | None] = []

    async def __call__(self, cursor: str | None) -> Page:
        self.asked.append(cursor)
        return self.pages[cursor]


def models(*names: str) -> list[dict[str, Any]]:
    return [{"id": name, "object": "model"} for name in names]


async def test_every_page_is_read_in_order_until_one_names_no_next():
    fetch = Pages({None: (models("a", "b"), "p2"), "p2": (models("c"), "p3"), "p3": ([], None)})

    assert [m["id"] for m in await list_pages(fetch)] == ["a", "b", "c"]
    assert fetch.asked == [None, "p2", "p3"]


async def test_a_page_naming_its_own_cursor_is_the_last():
    fetch = Pages({None: (models("a"), "p2"), "p2": (models("b"), "p2")})

    assert [m["id"] for m in await list_pages(fetch)] == ["a", "b"]
    assert fetch.asked == [None, "p2"]


async def test_an_endless_list_stops_at_the_page_limit():
    asked: list[str | None] = []

    async def endless(cursor: str | None) -> Page:
        asked.append(cursor)
        return models(f"m-{len(asked)}"), f"p{len(asked)}"

    listed = await list_pages(endless)

    assert len(asked) == len(listed) == MAX_MODEL_PAGES


async def test_too_many_models_are_cut_at_the_model_limit():
    asked: list[str | None] = []

    async def huge(cursor: str | None) -> Page:
        asked.append(cursor)
        return models(*(f"m-{len(asked)}-{n}" for n in range(1000))), f"p{len(asked)}"

    listed = await list_pages(huge)

    assert len(listed) == MAX_LISTED_MODELS
    assert len(asked) == -(-MAX_LISTED_MODELS // 1000)  # no page fetched past the limit
