"""`datamill dataset dedup` on both stores: a dry run, then the run, then nothing new."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from datamill.cli.common import ExitCode
from tests.api.test_dataset_dedup import COPIES, NEAR_MISSES, ORIGINALS
from tests.cli.conftest import CliEnv, RunCli
from tests.cli.test_dataset import write_samples


@pytest.fixture
def cli_env(store_url: str) -> CliEnv:
    return {"DATAMILL_DATABASE_URL": store_url}


def test_dedup_a_dataset_from_the_command_line(invoke: RunCli, tmp_path: Path):
    texts = ORIGINALS + list(COPIES) + NEAR_MISSES
    source = write_samples(tmp_path / "in.jsonl", [{"content": {"text": t}} for t in texts])
    assert invoke("dataset", "import", "faq", str(source), "--create").code == ExitCode.ok

    dry = invoke("dataset", "dedup", "faq", "--dry-run")
    done = invoke("dataset", "dedup", "faq", "--json")
    again = invoke("dataset", "dedup", "faq")

    assert dry.code == ExitCode.ok, dry.output
    assert "11 samples checked: 4 duplicates in 3 groups; would delete 4" in dry.output
    assert "through the transformer)" in dry.output  # the close pairs' texts it embedded
    assert done.code == ExitCode.ok, done.output
    report = orjson.loads(done.stdout)
    assert (report["deleted"], report["embedded"], report["reused"]) == (4, 0, 11)
    assert again.code == ExitCode.ok, again.output
    assert "7 samples checked: 0 duplicates in 0 groups; deleted 0" in again.output


def test_a_bad_threshold_is_refused(invoke: RunCli):
    refused = invoke("dataset", "dedup", "faq", "--threshold", "3")
    assert refused.code != ExitCode.ok
    assert "--threshold" in refused.output
