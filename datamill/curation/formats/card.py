"""A Hugging Face dataset card (README.md) for a directory of Parquet files: YAML front
matter whose ``configs`` name each split's file, which `datasets.load_dataset(DIR)` reads
(``load_dataset("parquet", data_files=...)`` reads the files without it), and the
columns' types in ``dataset_info``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson

# The Parquet export's columns and their `datasets` dtypes (`curation.exports.PARQUET_COLUMNS`).
FEATURES = (
    ("id", "string"),
    ("topic", "string"),
    ("sample_type", "string"),
    ("status", "string"),
    ("model", "string"),
    ("content", "string"),
    ("metadata", "string"),
    ("provenance", "string"),
    ("created_at", "int64"),
)


def dataset_card(
    name: str,
    description: str | None,
    files: Mapping[str, str],
    counts: Mapping[str, int],
    *,
    splits: str | None = None,
    seed: int | None = None,
    columns: Sequence[str] = (),
) -> str:
    """The card for ``files`` (split -> file name, relative to the card) holding
    ``counts`` samples each; ``splits`` and ``seed`` say how they were split. An empty split
    is left out of ``configs`` (`datasets` refuses a split with no rows). ``columns``: the
    text columns after `FEATURES` (content fields the task schemas export)."""
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split, path in files.items():
        if counts.get(split, 0) > 0:
            lines += [f"  - split: {_quoted(split)}", f"    path: {_quoted(path)}"]
    lines += ["dataset_info:", "  features:"]
    for column, dtype in FEATURES:
        lines += [f"  - name: {column}", f"    dtype: {dtype}"]
    for column in columns:
        lines += [f"  - name: {_quoted(column)}", "    dtype: string"]
    lines += ["---", "", f"# {name}", ""]
    if description:
        lines += [description, ""]
    lines.append(
        "Exported by datamill. Columns `content`, `metadata` and `provenance` hold JSON text;"
    )
    lines.append("`created_at` is Unix seconds.")
    lines.append("")
    lines.append("| split | file | samples |")
    lines.append("| --- | --- | --- |")
    lines += [f"| {split} | {path} | {counts.get(split, 0)} |" for split, path in files.items()]
    if splits is not None:
        lines += ["", f"Splits `{splits}` with seed {seed}: each sample's split is a hash of the"]
        lines.append("seed and its id, so it stays put as the dataset grows.")
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    return orjson.dumps(text).decode()  # a JSON string is a YAML double-quoted scalar
