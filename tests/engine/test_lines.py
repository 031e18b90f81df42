"""`render_line`: OpenAI's rule for ``response`` and ``error`` in output and error lines."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson

from datamill.engine.finalize import render_line


def row(**fields: Any) -> SimpleNamespace:
    base = {
        "line": 3,
        "custom_id": "q3",
        "status_code": None,
        "body": None,
        "provider_request_id": None,
        "error_code": None,
        "error_message": None,
    }
    return SimpleNamespace(**{**base, **fields})


def rendered(value: SimpleNamespace, *, ok: bool) -> dict[str, Any]:
    line = render_line(b"batch_req_x", value, ok=ok)
    assert line.endswith(b"\n")
    parsed: dict[str, Any] = orjson.loads(line)
    return parsed


def test_an_answer_is_the_response_and_error_stays_null():
    error = {"message": "no", "type": "invalid_request_error", "param": "model", "code": "x"}
    body = orjson.dumps({"error": error})
    line = rendered(
        row(
            status_code=400,
            body=body,
            provider_request_id="req_1",
            error_code="bad_request",
            error_message="no",
        ),
        ok=False,
    )

    assert line == {
        "id": "batch_req_x00000003",
        "custom_id": "q3",
        "response": {"status_code": 400, "request_id": "req_1", "body": orjson.loads(body)},
        "error": None,
        "datamill_category": "bad_request",
    }


def test_no_answer_sets_error():
    line = rendered(row(error_code="timeout", error_message="no answer in 600 s"), ok=False)

    assert (line["response"], line["error"]) == (
        None,
        {"code": "timeout", "message": "no answer in 600 s"},
    )
    assert line["datamill_category"] == "timeout"


def test_an_answer_without_a_kept_body_still_says_why():
    # Gemini's 2xx that could not finish: an HTTP answer, but nothing kept of its body.
    line = rendered(
        row(status_code=200, error_code="content_filter", error_message="SAFETY"), ok=False
    )

    assert line["error"] is None
    assert line["response"]["body"] == {
        "error": {
            "message": "SAFETY",
            "type": "upstream_error",
            "param": None,
            "code": "content_filter",
        }
    }


def test_a_success_line_has_no_category():
    line = rendered(
        row(status_code=200, body=b'{"object":"chat.completion"}', provider_request_id="r"), ok=True
    )

    assert set(line) == {"id", "custom_id", "response", "error"}
    assert line["error"] is None
