"""Seeded, stable train/validation/test splits: a sample's split follows from a hash of
(seed, sample id) alone, so it never moves as the dataset grows and a re-export is
byte-identical."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from datamill.errors import InvalidRequest

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_SCALE = float(1 << 64)
MAX_SPLITS = 10


@dataclass(frozen=True, slots=True)
class Splits:
    """Named fractions adding up to 1, in the order given."""

    parts: tuple[tuple[str, float], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.parts)

    def __str__(self) -> str:
        return ",".join(f"{name}={fraction:g}" for name, fraction in self.parts)


def parse_splits(text: str, *, param: str = "splits") -> Splits:
    """``train=0.8,validation=0.1,test=0.1`` as `Splits`, or a 400 naming ``param``."""
    parts: list[tuple[str, float]] = []
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        name = name.strip()
        if not sep or not _NAME.fullmatch(name):
            raise InvalidRequest(
                f"{item.strip()!r} is not NAME=FRACTION (a name of letters, digits, _ or -, "
                "then a fraction): write e.g. train=0.8,validation=0.1,test=0.1",
                param=param,
            )
        try:
            fraction = float(value)
        except ValueError:
            fraction = -1.0
        if not 0 < fraction <= 1:
            raise InvalidRequest(
                f"the fraction of split {name!r} must be a number above 0 and at most 1",
                param=param,
            )
        if name in (n for n, _ in parts):
            raise InvalidRequest(f"split {name!r} is named twice", param=param)
        parts.append((name, fraction))
    if len(parts) > MAX_SPLITS:
        raise InvalidRequest(f"at most {MAX_SPLITS} splits", param=param)
    total = sum(fraction for _, fraction in parts)
    if abs(total - 1) > 1e-6:
        raise InvalidRequest(f"the fractions add up to {total:g}, not 1", param=param)
    return Splits(tuple(parts))


class SplitAssigner:
    """Which split a sample id falls in, for one seed: the first 8 bytes of
    sha256("{seed}:{id}") as a fraction of 2**64, against the running sum of the fractions."""

    def __init__(self, splits: Splits, seed: int) -> None:
        self._prefix = f"{seed}:".encode()
        bounds: list[tuple[float, str]] = []
        running = 0.0
        for name, fraction in splits.parts:
            running += fraction
            bounds.append((running, name))
        self._bounds = bounds
        self._last = splits.parts[-1][0]

    def split_of(self, sample_id: str) -> str:
        digest = hashlib.sha256(self._prefix + sample_id.encode()).digest()
        point = int.from_bytes(digest[:8], "big") / _SCALE
        for bound, name in self._bounds:
            if point < bound:
                return name
        return self._last  # rounding: the fractions add up to a hair under 1
