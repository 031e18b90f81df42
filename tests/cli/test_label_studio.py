"""The Label Studio round trip on the CLI, on both stores: `datamill dataset export --format
label-studio` writes the tasks and their labeling config, `datamill review
import-label-studio` applies the annotations back, three times with nothing duplicated."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import orjson
import pytest

from datamill.cli.common import ExitCode
from tests.cli.conftest import CliEnv, RunCli
from tests.cli.test_dataset import write_samples


@pytest.fixture
def cli_env(store_url: str) -> CliEnv:
    return {"DATAMILL_DATABASE_URL": store_url}


ROWS = [{"content": {"question": f"What is {i}+{i}?", "answer": str(2 * i)}} for i in range(5)]


@pytest.fixture
def faq(invoke: RunCli, tmp_path: Path) -> None:
    source = write_samples(tmp_path / "in.jsonl", ROWS)
    assert invoke("dataset", "import", "faq", str(source), "--create").code == ExitCode.ok


def annotated(tasks: list[dict[str, Any]], decision: str) -> list[dict[str, Any]]:
    """Label Studio's JSON export of ``tasks``, one annotation each by the same user."""
    results = [{"from_name": "decision", "type": "choices", "value": {"choices": [decision]}}]
    if decision == "reject":
        reason = {"from_name": "decision_reason", "type": "textarea", "value": {"text": ["no"]}}
        results.append(reason)
    return [
        {
            "id": n,
            "data": task["data"],
            "annotations": [
                {
                    "id": 100 + n,
                    "completed_by": 7,
                    "result": copy.deepcopy(results),
                    "was_cancelled": False,
                    "ground_truth": False,
                    "updated_at": f"2026-12-0{n % 9 + 1}T00:00:00Z",
                }
            ],
        }
        for n, task in enumerate(tasks)
    ]


def test_export_then_import_three_times(invoke: RunCli, faq: None, tmp_path: Path):
    out = tmp_path / "tasks.json"

    exported = invoke("dataset", "export", "faq", "--format", "label-studio", "-o", str(out))

    assert exported.code == ExitCode.ok, exported.output
    tasks = orjson.loads(out.read_bytes())
    assert len(tasks) == len(ROWS)
    assert tasks[1]["data"]["question"] == "What is 1+1?"
    config = ET.fromstring((tmp_path / "tasks.json.config.xml").read_text())
    assert {e.get("name") for e in config.iter("Text")} == {"f_question", "f_answer"}
    assert "labeling config" in exported.output

    export = tmp_path / "ls.json"
    export.write_bytes(orjson.dumps(annotated(tasks, "approve")))
    first = invoke("review", "import-label-studio", "faq", str(export), "--json")
    assert first.code == ExitCode.ok, first.output
    assert orjson.loads(first.stdout)["created"] == len(ROWS)
    for _ in range(2):
        again = invoke("review", "import-label-studio", "faq", str(export))
        assert again.code == ExitCode.ok, again.output
        assert "0 applied" in again.output
        assert f"{len(ROWS)} already imported" in again.output

    export.write_bytes(orjson.dumps(annotated(tasks, "reject")))
    changed = invoke("review", "import-label-studio", "faq", str(export), "--json")
    report = orjson.loads(changed.stdout)
    assert (report["replaced"], report["created"], report["errors"]) == (len(ROWS), 0, 0)
    listed = invoke("dataset", "export", "faq", "--review-state", "rejected")
    lines = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert len(lines) == len(ROWS)  # every sample rejected by the one (replaced) review
    status = orjson.loads(invoke("review", "status", "faq", "--json").stdout)
    assert [(r["reviewer"], r["reviews"]) for r in status["reviewers"]] == [
        ("labelstudio:7", len(ROWS))
    ]


def test_problems_are_printed_and_a_bad_file_is_refused(invoke: RunCli, faq: None, tmp_path: Path):
    out = tmp_path / "tasks.json"
    assert invoke("dataset", "export", "faq", "--format", "label-studio", "-o", str(out)).code == 0
    tasks = orjson.loads(out.read_bytes())
    export = annotated(tasks, "approve")
    export[0]["annotations"][0]["result"][0]["value"] = {"choices": ["maybe"]}
    path = tmp_path / "ls.json"
    path.write_bytes(orjson.dumps(export))

    result = invoke("review", "import-label-studio", "faq", str(path))

    assert result.code == ExitCode.ok, result.output
    assert "1 errors" in result.output
    assert "'maybe' is not one of approve, reject" in result.output
    path.write_bytes(b"not json")
    refused = invoke("review", "import-label-studio", "faq", str(path))
    assert refused.code != ExitCode.ok
    assert "not Label Studio's JSON export" in refused.output


def test_splits_write_a_file_each_and_one_config(invoke: RunCli, faq: None, tmp_path: Path):
    out = tmp_path / "ls"
    split = "train=0.6,test=0.4"

    result = invoke(
        "dataset", "export", "faq", "--format", "label-studio", "--split", split, "-o", f"{out}/"
    )

    assert result.code == ExitCode.ok, result.output
    assert sorted(p.name for p in out.iterdir()) == ["faq.config.xml", "test.json", "train.json"]
    ids = [
        task["data"]["datamill_sample_id"]
        for name in ("train.json", "test.json")
        for task in orjson.loads((out / name).read_bytes())
    ]
    assert len(ids) == len(set(ids)) == len(ROWS)
