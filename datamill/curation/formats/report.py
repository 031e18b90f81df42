"""What an export did: samples read, written and left out (with why), and warnings."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Samples left out that a report names, with their reasons (all are counted).
LISTED = 100


@dataclass(slots=True)
class ExportReport:
    """Filled while an export streams; read it once the stream is done."""

    samples: int = 0  # read: matching the filters (and in the split, if one is chosen)
    exported: int = 0
    left_out: Counter[str] = field(default_factory=Counter)  # reason -> samples
    warnings: Counter[str] = field(default_factory=Counter)  # warning -> samples
    left_out_samples: list[dict[str, Any]] = field(default_factory=list)  # the first `LISTED`
    # Estimated tokens per example kept (total, assistant), when asked for (`export/check`).
    tokens: list[tuple[int, int]] | None = None
    # The content fields a Parquet export gave columns of their own (task schemas' export).
    columns: list[str] = field(default_factory=list)

    def leave_out(self, sample_id: str, reasons: list[str]) -> None:
        for reason in reasons:
            self.left_out[reason] += 1
        if len(self.left_out_samples) < LISTED:
            self.left_out_samples.append({"id": sample_id, "errors": reasons})

    @property
    def left_out_count(self) -> int:
        return self.samples - self.exported


# OpenAI's default epochs, and the example counts it aims an epoch choice at (the guide's).
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MAX_EPOCHS = 25


def default_epochs(examples: int) -> int:
    """The epochs fine-tuning picks by default for this many examples (as the guide says)."""
    if examples == 0:
        return TARGET_EPOCHS
    if examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_EPOCHS, MIN_TARGET_EXAMPLES // examples)
    if examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(1, MAX_TARGET_EXAMPLES // examples)
    return TARGET_EPOCHS


def distribution(values: list[int]) -> dict[str, int | float]:
    """min, max, mean, median (p50) and p95 of ``values`` (zeros when there are none)."""
    if not values:
        return {"min": 0, "max": 0, "mean": 0.0, "p50": 0, "p95": 0}
    ordered = sorted(values)
    return {
        "min": ordered[0],
        "max": ordered[-1],
        "mean": round(sum(ordered) / len(ordered), 1),
        "p50": ordered[(len(ordered) - 1) // 2],
        "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
    }
