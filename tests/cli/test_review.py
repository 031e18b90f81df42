"""`datamill review ...` on both stores, through the same service as the API: settings,
the queue, reviews with answers, an edit from a file, adjudication, status, and the
export filtered by review state."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from datamill.cli.common import ExitCode
from tests.cli.conftest import CliEnv, RunCli
from tests.cli.test_dataset import write_samples


@pytest.fixture
def cli_env(store_url: str) -> CliEnv:
    return {"DATAMILL_DATABASE_URL": store_url}


ROWS = [{"content": {"q": f"question {n}?"}} for n in range(3)]


def test_review_a_dataset_from_the_command_line(invoke: RunCli, tmp_path: Path):
    source = write_samples(tmp_path / "in.jsonl", ROWS)
    assert invoke("dataset", "import", "faq", str(source), "--create").code == ExitCode.ok

    changed = invoke("review", "settings", "faq", "--overlap", "2", "--no-blind", "--json")
    assert changed.code == ExitCode.ok, changed.output
    assert orjson.loads(changed.stdout) == {
        "object": "dataset.review_settings",
        "overlap": 2,
        "blind": False,
        "rule": "majority",
        "reservation_seconds": 900,
    }
    taken = invoke("review", "next", "faq", "--limit", "2", "--reviewer", "key_a", "--json")
    assert taken.code == ExitCode.ok, taken.output
    first, second = [item["sample"]["id"] for item in orjson.loads(taken.stdout)["data"]]

    def submit(sample: str, reviewer: str, *args: str) -> dict:
        done = invoke("review", "submit", "faq", sample, "--reviewer", reviewer, "--json", *args)
        assert done.code == ExitCode.ok, done.output
        return orjson.loads(done.stdout)

    edited = tmp_path / "edited.json"
    edited.write_bytes(orjson.dumps({"q": "a better question?"}))
    one = submit(first, "key_a", "--answer", "decision=approve", "--answer", "rating=5")
    assert (one["review_state"], one["review"]["answers"]) == (
        "in_review",
        {"decision": "approve", "rating": 5},
    )
    two = submit(first, "key_b", "--answer", "decision=approve", "--content-file", str(edited))
    assert two["review_state"] == "edited"
    submit(second, "key_a", "--answer", "decision=approve")
    split = submit(second, "key_b", "--answer", "decision=reject", "--reason", "vague")
    assert split["review_state"] == "disputed"
    decided = submit(
        second, "key_m", "--answer", "decision=reject", "--reason", "vague", "--adjudication"
    )
    assert decided["review_state"] == "rejected"

    status = invoke("review", "status", "faq", "--json")
    assert orjson.loads(status.stdout)["counts"] == {
        "unreviewed": 1,
        "in_review": 0,
        "approved": 0,
        "edited": 1,
        "rejected": 1,
        "disputed": 0,
    }
    plain = invoke("review", "status", "faq")
    assert "key_b" in plain.stdout

    agreement = invoke("review", "agreement", "faq", "--json")
    assert agreement.code == ExitCode.ok, agreement.output
    report = orjson.loads(agreement.stdout)
    decision, rating = report["questions"]  # the adjudication is not one more reading
    assert (decision["question"], decision["items_compared"]) == ("decision", 2)
    assert decision["observed_agreement"]["value"] == 0.5
    assert rating["observed_agreement"] == {"value": None, "reason": "too_few_ratings", "pairs": 0}
    assert {r["reviewer_id"] for r in report["reviewers"]} == {"key_a", "key_b"}
    table = invoke("review", "agreement", "faq")
    assert "0.500" in table.stdout
    assert "too_few_ratings" in table.stdout
    exported = invoke("dataset", "export", "faq", "--review-state", "approved,edited")
    assert [orjson.loads(line)["content"] for line in exported.stdout.splitlines()] == [
        {"q": "a better question?"}
    ]


def test_bad_answers_and_review_states_are_refused(invoke: RunCli, tmp_path: Path):
    source = write_samples(tmp_path / "in.jsonl", ROWS[:1])
    assert invoke("dataset", "import", "faq", str(source), "--create").code == ExitCode.ok
    taken = orjson.loads(invoke("review", "next", "faq", "--json").stdout)
    sample = taken["data"][0]["sample"]["id"]

    reject = invoke("review", "submit", "faq", sample, "--answer", "decision=reject")
    assert reject.code != ExitCode.ok
    assert "reason" in reject.output
    malformed = invoke("review", "submit", "faq", sample, "--answer", "decision")
    assert malformed.code == 2
    bad_state = invoke("dataset", "export", "faq", "--review-state", "approved,nice")
    assert bad_state.code == 2
    assert "--review-state" in bad_state.output
