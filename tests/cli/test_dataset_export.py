"""`datamill dataset export` to the fine-tuning formats, on both stores: the check summary
on stderr, one file per seeded split (byte-identical on re-export), and Parquet with a
Hugging Face dataset card."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest
import yaml

from datamill.cli.common import ExitCode
from tests.cli.conftest import CliEnv, RunCli
from tests.cli.test_dataset import write_samples


@pytest.fixture
def cli_env(store_url: str) -> CliEnv:
    return {"DATAMILL_DATABASE_URL": store_url}


ROWS = [
    *({"content": {"question": f"What is {i}+{i}?", "answer": str(2 * i)}} for i in range(30)),
    {"content": {"note": "no question here"}},
    {"content": {"messages": [{"role": "user", "content": "Hi"}]}},
]
SPLITS = "train=0.8,validation=0.1,test=0.1"


@pytest.fixture
def faq(invoke: RunCli, tmp_path: Path) -> None:
    source = write_samples(tmp_path / "in.jsonl", ROWS)
    assert invoke("dataset", "import", "faq", str(source), "--create").code == ExitCode.ok


def digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_openai_chat_to_stdout_with_the_checks_on_stderr(invoke: RunCli, faq: None):
    exported = invoke("dataset", "export", "faq", "--format", "openai-chat", "--system", "Sum.")

    assert exported.code == ExitCode.ok, exported.output
    lines = [orjson.loads(line) for line in exported.stdout.splitlines()]
    assert len(lines) == 30
    assert lines[1]["messages"] == [
        {"role": "system", "content": "Sum."},
        {"role": "user", "content": "What is 1+1?"},
        {"role": "assistant", "content": "2"},
    ]
    assert "exported 30 samples to stdout" in exported.stderr
    assert (
        "left out 2 failing the fine-tuning checks: 1 unmapped, "
        "1 example_missing_assistant_message" in exported.stderr
    )


def test_splits_to_a_directory_of_parquet_with_a_dataset_card(
    invoke: RunCli, faq: None, tmp_path: Path
):
    # Thirds: sample ids are random, and an empty split is left out of the card; with 10%
    # of 32 samples the test split would be empty 3% of the time, with a third 1 in 10^5.
    thirds = "train=0.34,validation=0.33,test=0.33"
    first = invoke(
        "dataset", "export", "faq", "--format", "parquet", "--split", thirds, "--seed", "7",
        "-o", "out/",
    )  # fmt: skip
    before = digests(tmp_path / "out")
    again = invoke(
        "dataset", "export", "faq", "--format", "parquet", "--split", thirds, "--seed", "7",
        "-o", "out/",
    )  # fmt: skip

    assert first.code == again.code == ExitCode.ok, first.output
    assert set(before) == {"README.md", "train.parquet", "validation.parquet", "test.parquet"}
    assert digests(tmp_path / "out") == before  # byte-identical
    import pyarrow.parquet as pq

    card = (tmp_path / "out" / "README.md").read_text()
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    files = meta["configs"][0]["data_files"]
    assert [f["split"] for f in files] == ["train", "validation", "test"]
    tables = {f["split"]: pq.read_table(tmp_path / "out" / f["path"]) for f in files}
    assert sum(t.num_rows for t in tables.values()) == 32
    ids = [i for t in tables.values() for i in t.column("id").to_pylist()]
    assert len(set(ids)) == 32
    columns = [f["name"] for f in meta["dataset_info"]["features"]]
    assert columns == tables["train"].column_names
    assert f"| train | train.parquet | {tables['train'].num_rows} |" in body
    assert "seed 7" in body


def test_splits_to_files_named_after_the_output(invoke: RunCli, faq: None, tmp_path: Path):
    exported = invoke(
        "dataset", "export", "faq", "--format", "csv", "--split", SPLITS, "-o", "d.csv"
    )

    assert exported.code == ExitCode.ok, exported.output
    rows = sum(
        len((tmp_path / f"d.{name}.csv").read_text().splitlines()) - 1
        for name in ("train", "validation", "test")
    )
    assert rows == 32
    assert "exported" in exported.stderr
    assert not (tmp_path / "d.csv").exists()


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["--split", SPLITS], "--output"),
        (["--split", "train=0.7,test=0.2", "-o", "x.jsonl"], "--split"),
        (["--split", "train", "-o", "x.jsonl"], "--split"),
        (["--format", "label_studio"], "--format"),
        (["--seed", "-1", "--split", SPLITS, "-o", "x.jsonl"], "--seed"),
    ],
)
def test_bad_export_options_exit_2(invoke: RunCli, faq: None, args: list[str], hint: str):
    result = invoke("dataset", "export", "faq", *args)

    assert result.code == ExitCode.usage
    assert hint in result.output


def test_hugging_face_datasets_loads_the_directory(invoke: RunCli, faq: None, tmp_path: Path):
    datasets = pytest.importorskip("datasets")  # not a dependency: run where it is installed
    exported = invoke(
        "dataset", "export", "faq", "--format", "parquet", "--split", SPLITS, "-o", "hf/"
    )

    loaded = datasets.load_dataset(str(tmp_path / "hf"), cache_dir=str(tmp_path / "cache"))

    assert exported.code == ExitCode.ok
    assert sum(loaded[name].num_rows for name in loaded) == 32
    assert loaded["train"].features["created_at"].dtype == "int64"
