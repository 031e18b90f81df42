"""Issue 14's hardening of spec code: a spec's templates, regexes and schema patterns run
bounded in time and memory, off the event loop. Each probe answers a clear 4xx (or rejects
the sample) within a bound, and the server answers other requests meanwhile."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import assert_error
from tests.api.test_generation import SIM, spec

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def with_type(**changes: Any) -> dict[str, Any]:
    """The test spec with its first sample type changed."""
    value = spec()
    value["sample_types"] = [{**value["sample_types"][0], **changes}]
    return value


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        (
            with_type(template="{{ " + "(" * 200 + "1" + ")" * 200 + " }}"),
            "spec.sample_types[0].template",
            "nests too deeply",
        ),
        (
            spec(quality={"regex": [{"pattern": "(" * 3000 + ")" * 3000}]}),
            "spec.quality.regex[0].pattern",
            "nests too deeply",
        ),
        (
            with_type(schema={"type": "string", "pattern": "(" * 3000 + ")" * 3000}),
            "spec.sample_types[0].schema",
            "nests too deeply",
        ),
    ],
)
async def test_deeply_nested_templates_and_regexes_are_400s(
    make_api, body: dict[str, Any], param: str, words: str
):
    api = await make_api(SIM)

    response = await api.client.post("/api/generation/jobs", json={"spec": body})

    error = assert_error(response, 400, param=param, code="invalid_spec")
    assert words in error["message"]
