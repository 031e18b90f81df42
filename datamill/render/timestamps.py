"""Stored times as the wire writes them."""

from __future__ import annotations


def timestamp(value: float | None) -> int | None:
    """A stored time (seconds, float) as the wire writes it: whole seconds, or None."""
    return int(value) if value is not None else None
