"""`datamill dataset ...` on both stores: import, list, show, search, export (JSONL and
Parquet), delete and restore, and the exit status of what goes wrong."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from datamill.cli.common import ExitCode
from datamill_testing.mock_process import MockProviderProcess
from tests.cli.conftest import CliEnv, RunCli, write_requests


@pytest.fixture
def cli_env(store_url: str) -> CliEnv:
    return {"DATAMILL_DATABASE_URL": store_url}


def write_samples(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


ROWS = [
    {"content": {"q": "What is a prime number?"}, "topic": "math", "sample_type": "qa"},
    {"content": {"q": "Who painted the Mona Lisa?"}, "topic": "art", "model": "m1"},
    {"content": {"q": "WHAT is a prime   number?"}, "topic": "math"},  # a duplicate of line 1
    {"content": {"q": "Name an even prime"}, "topic": "math", "sample_type": "qa"},
]


def test_a_dataset_from_import_to_export_and_back(invoke: RunCli, tmp_path: Path):
    source = write_samples(tmp_path / "in.jsonl", ROWS)

    imported = invoke("dataset", "import", "faq", str(source), "--create")
    listed = invoke("dataset", "list")
    shown = invoke("dataset", "show", "faq", "--json")
    found = invoke("dataset", "search", "faq", "prime -even")
    exported = invoke("dataset", "export", "faq", "--topic", "math")
    parquet = invoke("dataset", "export", "faq", "--format", "parquet", "-o", "faq.parquet")

    assert imported.code == ExitCode.ok, imported.output
    assert "created dataset faq" in imported.output
    assert "imported 3 of 4 samples" in imported.output
    assert "1 exact duplicate skipped" in imported.output
    assert "line 3: same content as smp_" in imported.output
    assert listed.stdout.split()[4:7] == [shown_id(shown), "faq", "3"]
    stats = orjson.loads(shown.stdout)["stats"]
    assert stats["by_topic"] == [{"value": "math", "count": 2}, {"value": "art", "count": 1}]
    assert found.code == ExitCode.ok
    assert "What is a prime number?" in found.stdout
    assert "even" not in found.stdout
    lines = [orjson.loads(line) for line in exported.stdout.splitlines()]
    assert [line["content"]["q"] for line in lines] == [
        "What is a prime number?",
        "Name an even prime",
    ]
    assert parquet.code == ExitCode.ok, parquet.output
    assert "exported 3 samples to faq.parquet" in parquet.output
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO((tmp_path / "faq.parquet").read_bytes()))
    assert table.num_rows == 3
    assert sorted(table.column("topic").to_pylist()) == ["art", "math", "math"]


def shown_id(shown: Any) -> str:
    return str(orjson.loads(shown.stdout)["id"])


def test_delete_and_restore_by_name(invoke: RunCli, tmp_path: Path):
    source = write_samples(tmp_path / "in.jsonl", ROWS)
    assert invoke("dataset", "import", "faq", str(source), "--create").code == ExitCode.ok

    deleted = invoke("dataset", "delete", "faq")
    gone = invoke("dataset", "export", "faq")
    trash = invoke("dataset", "list", "--deleted", "--json")
    restored = invoke("dataset", "restore", "faq")
    back = invoke("dataset", "list", "--json")

    assert deleted.code == ExitCode.ok
    assert "dataset restore" in deleted.output
    assert gone.code == ExitCode.could_not_run
    assert "No dataset named 'faq'" in gone.output
    assert [d["name"] for d in orjson.loads(trash.stdout)] == ["faq"]
    assert restored.code == ExitCode.ok
    assert "restored faq" in restored.output
    assert [(d["name"], d["sample_count"]) for d in orjson.loads(back.stdout)] == [("faq", 3)]


def test_an_invalid_file_is_refused_with_its_lines_and_nothing_is_imported(
    invoke: RunCli, tmp_path: Path
):
    source = tmp_path / "bad.jsonl"
    source.write_bytes(b'{"content": {"q": "fine"}}\n{"content": {"q": 1}, "topic": 7}\nnope\n')
    assert invoke("dataset", "create", "faq").code == ExitCode.ok

    done = invoke("dataset", "import", "faq", str(source))
    shown = invoke("dataset", "show", "faq", "--json")

    assert done.code == ExitCode.could_not_run
    assert "2 of 3 lines are invalid; nothing was imported" in done.output
    assert "bad.jsonl:2 topic: Input should be a valid string" in done.output
    assert "bad.jsonl:3: the line is not valid JSON" in done.output
    assert orjson.loads(shown.stdout)["sample_count"] == 0


def test_importing_into_an_unknown_dataset_says_how_to_create_it(invoke: RunCli, tmp_path: Path):
    source = write_samples(tmp_path / "in.jsonl", ROWS)

    done = invoke("dataset", "import", "nothing", str(source))

    assert done.code == ExitCode.could_not_run
    assert "No dataset named 'nothing'; --create makes it" in done.output


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["dataset", "export", "faq", "--format", "parquet"], "Parquet is binary"),
        (["dataset", "export", "faq", "--format", "xml"], "--format"),
        (["dataset", "export", "faq", "--deleted", "maybe"], "--deleted"),
        (["dataset", "create", "bad name"], "NAME"),
        (["dataset", "search", "faq", "x", "--limit", "0"], "--limit"),
        (["dataset", "import", "faq", "missing.jsonl"], "does not exist"),
    ],
)
def test_bad_usage_exits_2(invoke: RunCli, args: list[str], complaint: str):
    done = invoke(*args)

    assert done.code == ExitCode.usage
    assert complaint in done.output


def test_a_bad_search_exits_3_naming_the_problem(invoke: RunCli):
    assert invoke("dataset", "create", "faq").code == ExitCode.ok

    done = invoke("dataset", "search", "faq", "--", "-only -exclusions")

    assert done.code == ExitCode.could_not_run
    assert "at least one word or phrase" in done.output


def test_help_lists_the_dataset_commands(invoke: RunCli):
    done = invoke("dataset", "--help")

    for command in ("list", "create", "show", "import", "export", "search", "delete", "restore"):
        assert command in done.stdout


def test_export_and_search_by_batch_or_job(invoke: RunCli, tmp_path: Path):
    rows = [
        {"content": {"q": "prime one"}, "provenance": {"batch_id": "batch_1"}},
        {"content": {"q": "prime two"}, "provenance": {"job_id": "gen_1"}},
    ]
    invoke("dataset", "import", "faq", str(write_samples(tmp_path / "in.jsonl", rows)), "--create")

    by_batch = invoke("dataset", "export", "faq", "--batch-id", "batch_1")
    by_job = invoke("dataset", "search", "faq", "prime", "--job-id", "gen_1")

    assert by_batch.code == ExitCode.ok, by_batch.output
    assert [orjson.loads(line)["content"]["q"] for line in by_batch.stdout.splitlines()] == [
        "prime one"
    ]
    assert by_job.code == ExitCode.ok, by_job.output
    assert "prime two" in by_job.stdout
    assert "prime one" not in by_job.stdout


def test_a_batch_imported_into_a_dataset(
    invoke: RunCli, cli_env: CliEnv, mock_provider: MockProviderProcess, tmp_path: Path
):
    cli_env.update(OPENAI_BASE_URL=mock_provider.base_url, OPENAI_API_KEY="sk-test-not-a-key")
    write_requests(tmp_path / "in.jsonl", 3, rejected={1})
    ran = invoke("batch", "run", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"))
    assert "2 succeeded, 1 failed of 3" in ran.output, ran.output
    listed = invoke("batch", "list")
    [batch_id] = [word for word in listed.stdout.split() if word.startswith("batch_")]

    imported = invoke("dataset", "import-batch", "answers", batch_id, "--create")
    again = invoke("dataset", "import-batch", "answers", batch_id, "--json")
    unknown = invoke("dataset", "import-batch", "answers", "batch_nope")

    assert imported.code == ExitCode.ok, imported.output
    assert f"imported 2 of 2 answers of {batch_id}" in imported.output
    assert orjson.loads(again.stdout)["duplicates"] == 2
    assert unknown.code != ExitCode.ok
    assert "batch_nope" in unknown.output
    exported = invoke("dataset", "export", "answers", "--batch-id", batch_id)
    lines = [orjson.loads(line) for line in exported.stdout.splitlines()]
    assert sorted(line["provenance"]["request_id"] for line in lines) == ["r0", "r2"]
    assert lines[0]["content"]["messages"][-1]["role"] == "assistant"
