"""OpenAI tools, tool choice and sampling fields to Gemini ``tools``, ``toolConfig`` and
``generationConfig``.

Reference: Gemini API, "Generating content" (``Tool``, ``FunctionDeclaration``,
``ToolConfig``, ``GenerationConfig``, ``ThinkingConfig``).
"""

from __future__ import annotations

from typing import Any

from datamill.providers.gemini.errors import refused

# OpenAI reasoning_effort -> Gemini thinkingConfig.
_THINKING: dict[str, dict[str, Any]] = {
    "none": {"thinkingBudget": 0},
    "minimal": {"thinkingLevel": "MINIMAL"},
    "low": {"thinkingLevel": "LOW"},
    "medium": {"thinkingLevel": "MEDIUM"},
    "high": {"thinkingLevel": "HIGH"},
    "xhigh": {"thinkingLevel": "XHIGH"},
}


# -- tools ------------------------------------------------------------------------------------


def translate_tools(body: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Gemini ``tools`` and ``toolConfig``."""
    declarations = []
    strict = False
    for index, tool in enumerate(body.get("tools") or []):
        at = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise refused(at, "only function tools can be sent to Gemini")
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise refused(f"{at}.function", "needs a name")
        declaration: dict[str, Any] = {"name": function["name"]}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters") is not None:
            if not isinstance(function["parameters"], dict):
                raise refused(f"{at}.function.parameters", "must be a JSON Schema object")
            declaration["parametersJsonSchema"] = function["parameters"]
        strict = strict or function.get("strict") is True
        declarations.append(declaration)
    choice = body.get("tool_choice")
    config = _function_calling_config(choice, strict) if declarations else {}
    if choice not in (None, "none", "auto") and not declarations:
        raise refused("tool_choice", "needs function tools to choose from")
    tools = [{"functionDeclarations": declarations}] if declarations else []
    return tools, ({"functionCallingConfig": config} if config else {})


def _function_calling_config(choice: Any, strict: bool) -> dict[str, Any]:
    # Gemini's VALIDATED mode is AUTO with schema adherence: what `strict` functions ask for.
    auto = "VALIDATED" if strict else "AUTO"
    if choice is None or choice == "auto":
        return {"mode": auto} if strict else {}
    if choice == "none":
        return {"mode": "NONE"}
    if choice == "required":
        return {"mode": "ANY"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if not isinstance(name, str) or not name:
            raise refused("tool_choice.function.name", "is missing")
        return {"mode": "ANY", "allowedFunctionNames": [name]}
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        names = []
        for index, tool in enumerate(allowed.get("tools") or []):
            name = (tool.get("function") or {}).get("name") if isinstance(tool, dict) else None
            if not isinstance(name, str) or tool.get("type") != "function":
                raise refused(f"tool_choice.allowed_tools.tools[{index}]", "must name a function")
            names.append(name)
        mode = {"auto": "VALIDATED", "required": "ANY"}.get(str(allowed.get("mode")))
        if mode is None:
            raise refused("tool_choice.allowed_tools.mode", "must be auto or required")
        return {"mode": mode, "allowedFunctionNames": names}
    raise refused("tool_choice", f"{choice!r} cannot be expressed")


# -- generation config ------------------------------------------------------------------------


def generation_config(body: dict[str, Any]) -> dict[str, Any]:
    """Gemini ``generationConfig`` of the sampling and output fields."""
    config: dict[str, Any] = {}
    for field, name in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        value = body.get(field)
        if value is not None:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise refused(field, "must be a number")
            config[name] = value
    limit = _max_tokens(body)
    if limit is not None:
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise refused("stop", "must be a string or an array of strings")
        if stops:
            config["stopSequences"] = stops
    for field, name in (("n", "candidateCount"), ("seed", "seed")):
        value = body.get(field)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool):
                raise refused(field, "must be an integer")
            config[name] = value
    _logprobs(body, config)
    _response_format(body.get("response_format"), config)
    modalities = body.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise refused("modalities", 'only ["text"] can be expressed')
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in _THINKING:
            raise refused("reasoning_effort", f"{effort!r} cannot be expressed")
        config["thinkingConfig"] = dict(_THINKING[effort])
    return config


def _max_tokens(body: dict[str, Any]) -> int | None:
    values = {
        f: body[f] for f in ("max_completion_tokens", "max_tokens") if body.get(f) is not None
    }
    for field, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise refused(field, "must be an integer of at least 1")
    if len(set(values.values())) > 1:
        raise refused("max_tokens", "differs from max_completion_tokens; set one of them")
    return next(iter(values.values()), None)


def _logprobs(body: dict[str, Any], config: dict[str, Any]) -> None:
    top = body.get("top_logprobs")
    if body.get("logprobs") is True:
        config["responseLogprobs"] = True
        if top is not None:
            if not isinstance(top, int) or isinstance(top, bool) or top < 0:
                raise refused("top_logprobs", "must be a non-negative integer")
            config["logprobs"] = top
    elif top is not None:
        raise refused("top_logprobs", "needs logprobs set to true")


def _response_format(response_format: Any, config: dict[str, Any]) -> None:
    if response_format is None:
        return
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return
    if kind == "json_object":
        config["responseMimeType"] = "application/json"
        return
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise refused("response_format.json_schema.schema", "must be a JSON Schema object")
        description = spec.get("description") if isinstance(spec, dict) else None
        if description and "description" not in schema:
            # OpenAI shows the format's description to the model; in Gemini the schema's
            # own description annotation is where the model reads it.
            schema = {**schema, "description": description}
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = schema
        return
    raise refused("response_format.type", f"{kind!r} cannot be expressed")
