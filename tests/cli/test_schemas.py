"""`datamill schemas`: a task schema file validated, created, updated, shown by version,
its Label Studio config written, and deleted, on the store."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.cli.conftest import RunCli

EXAMPLE = Path(__file__).parents[2] / "examples" / "task-schemas" / "legal_qa.yaml"


def test_schemas_from_the_cli(invoke: RunCli, tmp_path: Path):
    valid = invoke("schemas", "validate", str(EXAMPLE))
    assert valid.code == 0, valid.stderr
    assert "valid" in valid.stdout

    broken = tmp_path / "broken.yaml"
    broken.write_text("name: qa\nreview:\n  questions:\n    - {name: d, kind: vote}\n")
    refused = invoke("schemas", "validate", str(broken))
    assert refused.code != 0
    assert "broken.yaml.review.questions[0].kind" in refused.output
    laughs = tmp_path / "laughs.yaml"
    laughs.write_text("name: qa\ndescription: &a x\nicl: {template: *a}\n")
    assert (
        "YAML aliases (*name) are not allowed in a schema"
        in invoke("schemas", "validate", str(laughs)).output
    )

    created = invoke("schemas", "create", str(EXAMPLE), "--json")
    assert created.code == 0, created.stderr
    assert (json.loads(created.stdout)["name"], json.loads(created.stdout)["version"]) == (
        "legal_qa",
        1,
    )
    assert invoke("schemas", "create", str(EXAMPLE)).code != 0  # exists: update it

    changed = tmp_path / "legal_qa.json"
    definition = json.loads(invoke("schemas", "show", "legal_qa", "--json").stdout)["definition"]
    changed.write_text(json.dumps({**definition, "description": "second"}))
    updated = invoke("schemas", "update", str(changed))
    assert updated.code == 0, updated.stderr
    assert updated.stdout.strip() == "legal_qa v2"

    first = invoke("schemas", "show", "legal_qa", "--version", "1")
    assert "description: A client's legal question and a careful answer." in first.stdout
    assert "description: second" in invoke("schemas", "show", "legal_qa").stdout
    listed = invoke("schemas", "list")
    assert "legal_qa" in listed.stdout
    assert "second" in listed.stdout

    out = tmp_path / "config.xml"
    wrote = invoke("schemas", "label-studio-config", "legal_qa", "-o", str(out))
    assert wrote.code == 0, wrote.stderr
    names = {e.get("name") for e in ET.parse(out).getroot().iter() if e.get("name")}
    assert {  # `task_schemas.label_studio_names`
        "decision",
        "decision_reason_choice",
        "decision_reason",
        "accuracy",
        "issues",
        "note",
    } <= names
    assert "edit__answer" in names

    assert invoke("schemas", "delete", "legal_qa").code == 0
    gone = invoke("schemas", "show", "legal_qa")
    assert gone.code != 0
    assert "No task schema named 'legal_qa'" in gone.output
