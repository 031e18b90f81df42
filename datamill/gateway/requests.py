"""Checking a gateway request body before it is routed.

Only what datamill itself needs is checked here: a JSON object, a ``model``, the endpoint's
required field, and the streaming switches. Everything else goes to the provider as it is,
and the provider's adapter judges what it can express (providers/fields.py). Each problem is
an `InvalidRequest` naming the field, as OpenAI names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from datamill.errors import InvalidRequest
from datamill.protocol.limits import nests_too_deeply, too_deep_message
from datamill.providers.base import Endpoint
from datamill.storage.schema import DEFAULT_PROJECT_ID


@dataclass(frozen=True, slots=True)
class GatewayRequest:
    endpoint: Endpoint
    body: dict[str, Any]
    raw: bytes  # the body as the client sent it
    model: str
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage
    # Who asked, for accounting and stored responses: the caller's project and key.
    project_id: str = DEFAULT_PROJECT_ID
    key_id: str | None = None


def parse_request(
    raw: bytes,
    endpoint: Endpoint,
    *,
    project_id: str = DEFAULT_PROJECT_ID,
    key_id: str | None = None,
) -> GatewayRequest:
    """The checked request, or `InvalidRequest` naming what is wrong."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"the request body is not valid JSON ({exc.msg})", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object", code="invalid_value")
    if nests_too_deeply(raw, body):
        raise InvalidRequest(too_deep_message("the request body"), code="invalid_value")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _missing("model") if model is None else _invalid("model", "a non-empty string")
    if endpoint is Endpoint.embeddings:
        _check_input(body)
        return GatewayRequest(endpoint, body, raw, model, project_id=project_id, key_id=key_id)
    if endpoint is Endpoint.responses:
        _check_input(body)
    else:
        _check_messages(body)
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise _invalid("stream", "a boolean")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not stream:
            raise InvalidRequest(
                "stream_options is only allowed when stream is true",
                param="stream_options",
                code="invalid_value",
            )
        if not isinstance(options, dict):
            raise _invalid("stream_options", "an object")
        include_usage = options.get("include_usage", False)
        if not isinstance(include_usage, bool):
            raise _invalid("stream_options.include_usage", "a boolean")
    return GatewayRequest(
        endpoint, body, raw, model, bool(stream), include_usage, project_id, key_id
    )


def _check_messages(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if messages is None:
        raise _missing("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages", "a non-empty array of messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid(f"messages[{index}]", "an object")
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise _missing(f"messages[{index}].role")


def _check_input(body: dict[str, Any]) -> None:
    given = body.get("input")
    if given is None:
        raise _missing("input")
    if not isinstance(given, str | list) or not given:
        raise _invalid("input", "a non-empty string or array")


def _missing(param: str) -> InvalidRequest:
    return InvalidRequest(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def _invalid(param: str, expected: str) -> InvalidRequest:
    return InvalidRequest(f"'{param}' must be {expected}.", param=param, code="invalid_value")
