"""Bounds on what clients send that datamill's own code could not otherwise survive."""

from __future__ import annotations

from typing import Any

# How deeply a request body's arrays and objects may nest. orjson reads up to 1,024 levels
# but writes only 255, so a body in between would parse, then fail when re-encoded (for a
# provider, a store, a batch line's envelope). Real requests (JSON Schemas of tools and
# response formats included) stay far under this.
MAX_JSON_DEPTH = 128


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value``'s lists and dicts nest deeper than ``limit`` (without recursion)."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, dict | list):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def too_deep_message(what: str) -> str:
    return f"{what} nests arrays and objects more than {MAX_JSON_DEPTH} levels deep"


def nests_too_deeply(raw: bytes, value: Any) -> bool:
    """`json_depth_exceeds` for ``value`` parsed from ``raw``, walked only when ``raw`` has
    more brackets than the limit (the common request has a handful)."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return False
    return json_depth_exceeds(value)
