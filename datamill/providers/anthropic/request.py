"""OpenAI chat completion request -> Anthropic Messages request.

Every field is translated faithfully or refused with a `bad_request` naming it (``param``):
nothing is dropped. `table.CHAT_FIELD_TABLE` declares which is which; `messages_request`
enforces it.

Choices that are not one-to-one (docs/providers.md, the `anthropic` section, says why):

- The messages are translated by `conversation` (system prompt, merged turns, tool results).
- ``response_format`` (json_object, json_schema) is a forced tool, `JSON_TOOL`, whose
  ``input_schema`` is the schema; its input comes back as the message content. With the
  ``json_mode = "output_format"`` option, a json_schema goes to ``output_config.format``
  (Anthropic's structured outputs) instead.
- ``reasoning_effort`` is adaptive thinking at that effort (``output_config.effort``); ``none``
  turns thinking off; ``minimal`` has no equivalent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from datamill.providers.anthropic.conversation import conversation
from datamill.providers.anthropic.options import AnthropicOptions
from datamill.providers.anthropic.table import CHAT_FIELD_TABLE, JSON_TOOL, PROVIDER, refuse
from datamill.providers.fields import reject_unsupported

_REASONING_EFFORTS = ("low", "medium", "high", "xhigh")
_SERVICE_TIERS = {"auto": "auto", "default": "standard_only"}


def messages_request(body: Mapping[str, Any], options: AnthropicOptions) -> dict[str, Any]:
    """The Anthropic Messages request for an OpenAI chat completion ``body`` (without
    ``stream``). Raises `ProviderError` (bad_request, ``param`` set) for what it cannot say."""
    reject_unsupported(body, CHAT_FIELD_TABLE, provider=PROVIDER)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise refuse("model", "must be a model name")
    system, messages = conversation(body.get("messages"))
    request: dict[str, Any] = {"model": model, "max_tokens": _max_tokens(body, options)}
    if system:
        # One system message stays the plain string it was written as.
        request["system"] = system[0]["text"] if len(system) == 1 else system
    request["messages"] = messages
    _check_values(body)
    _sampling(body, request)
    thinking = _reasoning(body, request)
    _tools(body, request, options, thinking=thinking)
    user = _user(body)
    if user is not None:
        request["metadata"] = {"user_id": user}
    tier = body.get("service_tier")
    if tier is not None:
        request["service_tier"] = _SERVICE_TIERS[tier]
    if options.prompt_caching:
        request["cache_control"] = {"type": "ephemeral"}
    return request


def _check_values(body: Mapping[str, Any]) -> None:
    """The values a `partial` field refuses (what ``reject_unsupported`` cannot know)."""
    n = body.get("n")
    if n is not None and n != 1:
        raise refuse("n", "above 1 cannot be expressed (one answer per request)")
    modalities = body.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise refuse("modalities", 'other than ["text"] cannot be expressed')
    tier = body.get("service_tier")
    if tier is not None and tier not in _SERVICE_TIERS:
        raise refuse("service_tier", f"{tier!r} cannot be expressed (auto and default can)")


def _max_tokens(body: Mapping[str, Any], options: AnthropicOptions) -> int:
    completion, legacy = body.get("max_completion_tokens"), body.get("max_tokens")
    if completion is not None and legacy is not None and completion != legacy:
        raise refuse("max_tokens", "differs from max_completion_tokens; set only one")
    value = completion if completion is not None else legacy
    if value is None:
        return options.default_max_tokens
    if not _is_int(value) or value < 1:
        param = "max_completion_tokens" if completion is not None else "max_tokens"
        raise refuse(param, "must be a positive integer")
    return int(value)


def _sampling(body: Mapping[str, Any], request: dict[str, Any]) -> None:
    temperature = body.get("temperature")
    if temperature is not None:
        if not _is_number(temperature) or not 0 <= temperature <= 1:
            # OpenAI's 0-2 scale is not Anthropic's 0-1: rescaling would change the meaning.
            raise refuse("temperature", "must be between 0 and 1 for Anthropic (never clamped)")
        request["temperature"] = temperature
    top_p = body.get("top_p")
    if top_p is not None:
        if not _is_number(top_p) or not 0 <= top_p <= 1:
            raise refuse("top_p", "must be between 0 and 1")
        request["top_p"] = top_p
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(item, str) for item in stop):
            raise refuse("stop", "must be a string or a list of strings")
        if stop:
            request["stop_sequences"] = stop


def _reasoning(body: Mapping[str, Any], request: dict[str, Any]) -> bool:
    """Set thinking from ``reasoning_effort``; True when the model will think."""
    effort = body.get("reasoning_effort")
    if effort is None:
        return False
    if effort == "none":
        request["thinking"] = {"type": "disabled"}
        return False
    if effort not in _REASONING_EFFORTS:
        raise refuse("reasoning_effort", f"{effort!r} has no Anthropic equivalent")
    request["thinking"] = {"type": "adaptive"}
    request.setdefault("output_config", {})["effort"] = effort
    return True


def _user(body: Mapping[str, Any]) -> str | None:
    user, identifier = body.get("user"), body.get("safety_identifier")
    for name, value in (("user", user), ("safety_identifier", identifier)):
        if value is not None and not isinstance(value, str):
            raise refuse(name, "must be a string")
    if user is not None and identifier is not None and user != identifier:
        # Both become metadata.user_id: two different users cannot be said.
        raise refuse("safety_identifier", "differs from user; Anthropic takes one user id")
    return identifier if identifier is not None else user


# -- tools and JSON answers -----------------------------------------------------------------


def _tools(
    body: Mapping[str, Any], request: dict[str, Any], options: AnthropicOptions, *, thinking: bool
) -> None:
    tools = [_tool(index, tool) for index, tool in enumerate(body.get("tools") or [])]
    choice = _tool_choice(body.get("tool_choice"))
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise refuse("parallel_tool_calls", "must be true or false")
    json_tool = _json_answer(body.get("response_format"), request, options)
    if json_tool is not None:
        kind = choice["type"] if choice is not None else "auto"
        # The answer is JSON unless the model calls one of the request's tools; `required`
        # and a named function ask for tool calls, which no format applies to.
        if kind in ("auto", "none"):
            if thinking:
                raise refuse(
                    "response_format",
                    "cannot be combined with reasoning_effort when json_mode is `tool` "
                    "(Anthropic forbids forced tool use while thinking); set "
                    'json_mode = "output_format"',
                )
            choice = (
                {"type": "any"} if kind == "auto" and tools else {"type": "tool", "name": JSON_TOOL}
            )
            tools.append(json_tool)
            # Two calls of it would be two JSON documents in one content string.
            parallel = False
    if not tools:
        if choice is not None and choice["type"] not in ("auto", "none"):
            raise refuse("tool_choice", "needs tools")
        return
    request["tools"] = tools
    if parallel is False and (choice is None or choice["type"] != "none"):
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice is not None:
        request["tool_choice"] = choice


def _tool(index: int, tool: Any) -> dict[str, Any]:
    where = f"tools[{index}]"
    if not isinstance(tool, dict) or tool.get("type") != "function":
        raise refuse(f"{where}.type", "other than function cannot be expressed")
    function = tool.get("function")
    if not isinstance(function, dict):
        raise refuse(f"{where}.function", "must be an object")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise refuse(f"{where}.function.name", "must be a name")
    if name == JSON_TOOL:
        raise refuse(f"{where}.function.name", "is reserved for JSON answers")
    translated: dict[str, Any] = {"name": name}
    description = function.get("description")
    if description is not None:
        translated["description"] = description
    translated["input_schema"] = _object_schema(
        function.get("parameters"), f"{where}.function.parameters"
    )
    if function.get("strict") is True:
        translated["strict"] = True
    return translated


def _object_schema(schema: Any, param: str) -> dict[str, Any]:
    """A function's parameters as an ``input_schema``: Anthropic requires an object schema,
    which a function's arguments always are (OpenAI leaves ``type`` implicit)."""
    if schema is None:
        return {"type": "object", "properties": {}}
    if not isinstance(schema, dict):
        raise refuse(param, "must be a JSON schema object")
    if "type" not in schema:
        return {"type": "object", **schema}
    if schema["type"] != "object":
        raise refuse(param, "must describe an object (Anthropic tool input is an object)")
    return dict(schema)


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    simple = {"auto": "auto", "none": "none", "required": "any"}
    if isinstance(choice, str) and choice in simple:
        return {"type": simple[choice]}
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name:
            raise refuse("tool_choice.function.name", "must be a name")
        return {"type": "tool", "name": name}
    kind = choice.get("type") if isinstance(choice, dict) else choice
    raise refuse("tool_choice", f"{kind!r} cannot be expressed")


def _json_answer(
    response_format: Any, request: dict[str, Any], options: AnthropicOptions
) -> dict[str, Any] | None:
    """Express ``response_format``: returns the JSON tool to force, or None (no JSON answer,
    or one asked through ``output_config.format``)."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        if options.json_mode == "output_format":
            raise refuse(
                "response_format",
                "json_object has no schema for Anthropic's output_config.format; use "
                'json_schema, or json_mode = "tool"',
            )
        return {
            "name": JSON_TOOL,
            "description": "Give your answer as a JSON object: the input of this tool.",
            "input_schema": {"type": "object"},
        }
    if kind != "json_schema":
        raise refuse("response_format", f"type {kind!r} cannot be expressed")
    assert isinstance(response_format, dict)
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise refuse("response_format.json_schema", "must be an object with a name")
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise refuse("response_format.json_schema.schema", "must be a JSON schema object")
    if options.json_mode == "output_format":
        request.setdefault("output_config", {})["format"] = {
            "type": "json_schema",
            "schema": schema,
        }
        return None
    about = f"The JSON value `{spec['name']}`"
    if isinstance(spec.get("description"), str):
        about += f": {spec['description']}"
    tool: dict[str, Any] = {
        "name": JSON_TOOL,
        "description": f"Give your answer as the input of this tool. {about}",
        "input_schema": _object_schema(schema, "response_format.json_schema.schema"),
    }
    if spec.get("strict") is True:
        tool["strict"] = True
    return tool


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
