"""`datamill generate` on the `sim` provider, as a real process: every cell of the legal
example reaches its target with valid, unique samples; a SIGKILL mid-run is resumed by the
same command without exceeding any target; budgets stop a job; preview and coverage."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import yaml

from datamill.nlp.canonical import normalized_hash, sample_text
from datamill_testing.mock_process import MockProviderProcess
from tests.cli.conftest import RunCli, StartCli
from tests.conftest import write_config

EXAMPLE = Path(__file__).parents[2] / "examples" / "legal-cases.yaml"


def small_example(path: Path, *, topics: int | None = None, **changes: Any) -> dict[str, Any]:
    spec = yaml.safe_load(EXAMPLE.read_text())
    if topics is not None:
        spec["topics"]["items"] = spec["topics"]["items"][:topics]
    spec.update(changes)
    path.write_text(yaml.safe_dump(spec))
    return spec


def stored_samples(home: Path) -> list[tuple[str, str, dict[str, Any], str]]:
    with sqlite3.connect(home / "datamill.db") as db:
        rows = db.execute(
            "SELECT topic, sample_type, content, content_hash FROM samples WHERE deleted_at IS NULL"
        ).fetchall()
    return [(t, s, orjson.loads(c), h) for t, s, c, h in rows]


def check_dataset(
    spec: dict[str, Any], samples: list[tuple[str, str, dict[str, Any], str]], per_cell: int
) -> None:
    """Every cell exactly at its target; every sample valid; no exact or near-duplicates."""
    from datamill.nlp.dedup import NearDuplicateIndex

    counts: dict[tuple[str, str], int] = {}
    schemas = {t["name"]: t["schema"] for t in spec["sample_types"]}
    for topic, sample_type, content, content_hash in samples:
        counts[(topic, sample_type)] = counts.get((topic, sample_type), 0) + 1
        jsonschema.validate(content, schemas[sample_type])
        assert content_hash == normalized_hash(content)
    expected = {(t, s["name"]) for t in spec["topics"]["items"] for s in spec["sample_types"]}
    assert set(counts) == expected
    assert set(counts.values()) == {per_cell}
    assert len({h for *_, h in samples}) == len(samples)
    texts = [sample_text(content) for _, _, content, _ in samples]
    matches = NearDuplicateIndex().check_and_add_many(texts, [str(i) for i in range(len(texts))])
    assert [m for m in matches if m is not None] == []


@pytest.mark.slow
def test_the_legal_example_reaches_every_cell_on_sim(
    run_cli: RunCli, tmp_path: Path, isolated_environment: Path
):
    spec = small_example(tmp_path / "legal.yaml", target={"per_cell": 1})

    done = run_cli("generate", "legal.yaml")

    assert done.code == 0, done.stderr
    assert "completed: 168 of 168 samples accepted, 168 of 168 cells full" in done.output
    check_dataset(spec, stored_samples(isolated_environment), per_cell=1)

    again = run_cli("generate", "legal.yaml", "--resume")  # a finished job: nothing to do
    assert again.code == 0, again.stderr
    assert "168 of 168" in again.output
    assert len(stored_samples(isolated_environment)) == 168

    coverage = run_cli("generate", "coverage", "legal-cases", "--json", "--no-diversity")
    assert coverage.code == 0, coverage.stderr
    report = orjson.loads(coverage.stdout)
    assert report["accepted"] == 168
    assert len(report["cells"]) == 168


@pytest.mark.slow
def test_sigkill_then_resume_never_exceeds_a_target(
    start_cli: StartCli, run_cli: RunCli, tmp_path: Path, isolated_environment: Path
):
    write_config(
        tmp_path / "datamill.toml",
        [
            {
                "name": "slow-sim",
                "provider": "sim",
                "model": "llama-3.3-70b-versatile",
                "options": {"latency_ms": 40},
            }
        ],
    )
    spec = small_example(
        tmp_path / "legal.yaml",
        topics=8,
        target={"per_cell": 4},
        loop={"batch_size": 48, "overshoot_margin": 1.0},
    )
    env = {"DATAMILL_CONFIG": str(tmp_path / "datamill.toml"), "DATAMILL_CONCURRENCY": "8"}
    crashed = start_cli("generate", "legal.yaml", env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if (isolated_environment / "datamill.db").exists():
            try:
                if len(stored_samples(isolated_environment)) >= 30:
                    break
            except sqlite3.OperationalError:
                continue
    crashed.kill()  # SIGKILL: the runner's lease and the batches in flight are left behind
    before = len(stored_samples(isolated_environment))
    assert 30 <= before < 128

    resumed = run_cli("generate", "legal.yaml", env=env)

    assert resumed.code == 0, resumed.stderr
    assert "resuming gen_" in resumed.output
    assert "128 of 128 samples accepted" in resumed.output
    check_dataset(spec, stored_samples(isolated_environment), per_cell=4)


@pytest.mark.slow
def test_a_request_budget_stops_the_job_short_with_exit_1(
    run_cli: RunCli, tmp_path: Path, isolated_environment: Path
):
    small_example(tmp_path / "legal.yaml", topics=4, target={"per_cell": 3})

    done = run_cli("generate", "legal.yaml", "--budget-requests", "10")

    assert done.code == 1, done.stderr
    assert "budget_exhausted (budget_requests)" in done.output
    assert "10 requests" in done.output
    assert len(stored_samples(isolated_environment)) <= 10


@pytest.mark.slow
def test_preview_shows_prompt_sample_verdict_and_estimate(run_cli: RunCli, tmp_path: Path):
    small_example(tmp_path / "legal.yaml")

    done = run_cli("generate", "preview", "legal.yaml", "--topic", "Negligence", "--json")

    assert done.code == 0, done.stderr
    report = orjson.loads(done.stdout)
    assert [s["sample_type"] for s in report["samples"]] == [
        "case_analysis",
        "statute_explanation",
        "contract_clause_review",
        "legal_qa",
    ]
    first = report["samples"][0]
    assert "Negligence" in first["prompt"][-1]["content"]
    assert first["raw_answer"]["choices"][0]["message"]["content"]
    assert (first["sample"] is None) == (first["rejection"] is not None)
    assert report["estimate"]["target"] == 7600
    assert report["estimate"]["requests"] >= 7600

    unknown = run_cli("generate", "preview", "legal.yaml", "--topic", "Astrology")
    assert unknown.code == 3
    assert "Astrology" in unknown.output


def test_a_bad_spec_names_the_key(run_cli: RunCli, tmp_path: Path):
    small_example(tmp_path / "bad.yaml", target={"per_cell": 1, "total": 5})

    done = run_cli("generate", "bad.yaml")

    assert done.code == 3
    assert "bad.yaml.target: give exactly one of total, per_type or per_cell" in done.output


def test_a_spec_bomb_is_refused_before_it_expands(run_cli: RunCli, tmp_path: Path):
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
    )
    (tmp_path / "laughs.yaml").write_text(laughs)
    (tmp_path / "huge.yaml").write_text("name: x\n" + "#" * (1024 * 1024))

    for command in (("generate",), ("generate", "preview")):
        refused = run_cli(*command, "laughs.yaml")
        assert refused.code == 3
        assert "laughs.yaml: YAML aliases (*name) are not allowed in a spec" in refused.output
        too_big = run_cli(*command, "huge.yaml")
        assert too_big.code == 3
        assert "more than the 1048576 a spec may have" in too_big.output


def test_a_model_that_repeats_itself_stops_the_job(
    run_cli: RunCli, tmp_path: Path, mock_provider: MockProviderProcess
):
    config = write_config(
        tmp_path / "mock.toml",
        [{"name": "mock", "base_url": mock_provider.base_url, "model": "mock-model"}],
    )
    same = {"text": "Always the same answer, word for word, whatever the prompt says."}
    spec = {
        "name": "repeats",
        "model": "mock-model",
        # The mock answers every request by echoing `user`: the same answer every time.
        "sampling": {"user": orjson.dumps(same).decode()},
        "topics": {"items": ["contracts"]},
        "sample_types": [
            {
                "name": "note",
                "template": "A note on {{ topic }} ({{ variation.seed }})",
                "schema": {"type": "object", "properties": {"text": {"type": "string"}}},
            }
        ],
        "target": {"per_cell": 5},
        "dedup": {"near": False},
        "loop": {"max_idle_rounds": 2},
    }
    (tmp_path / "repeats.yaml").write_text(yaml.safe_dump(spec))

    done = run_cli("generate", "repeats.yaml", env={"DATAMILL_CONFIG": str(config)})

    assert done.code == 1, done.stderr
    assert "budget_exhausted (no_progress): 1 of 5 samples accepted" in done.output
