"""What the mock Gemini server refuses, as Gemini does: a request translated wrongly fails
loudly with a 400 ``INVALID_ARGUMENT`` naming what is wrong.

The rules follow the Gemini API reference (``GenerateContentRequest``, ``Content``, ``Part``,
``GenerationConfig``, ``Tool``, ``ToolConfig``, ``EmbedContentRequest``): unknown fields are
refused (``Unknown name "x"``), roles are ``user`` or ``model``, a content has parts, a part
holds exactly one kind of data, function responses answer the function calls of the turn
just before them.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import Counter
from typing import Any

_REQUEST_FIELDS = {
    "model",  # inside an inlined batch request
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "safetySettings",
    "generationConfig",
    "cachedContent",
}
_GENERATION_FIELDS = {
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "thinkingConfig",
    "mediaResolution",
}
_DATA_FIELDS = {"text", "inlineData", "fileData", "functionCall", "functionResponse"}
_PART_FIELDS = _DATA_FIELDS | {"thought", "thoughtSignature", "mediaResolution"}
_THINKING_FIELDS = {"includeThoughts", "thinkingBudget", "thinkingLevel"}
_THINKING_LEVELS = {"MINIMAL", "LOW", "MEDIUM", "HIGH", "XHIGH"}
_MODES = {"AUTO", "ANY", "NONE", "VALIDATED"}
_FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
_EMBED_FIELDS = {"model", "content", "taskType", "title", "outputDimensionality"}


# Values that are free-form JSON (google.protobuf.Struct or a JSON Schema): their keys are data.
_FREE_FORM = {"args", "response", "parametersJsonSchema", "responseJsonSchema", "metadata"}
# Proto Schema objects: their own keys are field names, but `properties` maps data keys.
_SCHEMAS = {"parameters", "responseSchema"}


class Invalid(Exception):
    """A request Gemini would refuse with 400 INVALID_ARGUMENT."""


def camel_case(value: Any, *, schema: bool = False) -> Any:
    """A request with proto field names (``system_instruction``) renamed to their JSON names
    (``systemInstruction``): proto3 JSON parsing accepts both, and the SDKs send some fields
    by their proto names."""
    if isinstance(value, list):
        return [camel_case(item, schema=schema) for item in value]
    if not isinstance(value, dict):
        return value
    result = {}
    for key, item in value.items():
        name = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key)
        if name in _FREE_FORM or (schema and key == "properties"):
            if schema and key == "properties" and isinstance(item, dict):
                item = {k: camel_case(v, schema=True) for k, v in item.items()}
            result[name] = item
        else:
            result[name] = camel_case(item, schema=schema or name in _SCHEMAS)
    return result


def check_generate(body: Any) -> None:
    """Raise `Invalid` for a ``GenerateContentRequest`` Gemini would refuse."""
    _object(body, "request", _REQUEST_FIELDS)
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise Invalid("* GenerateContentRequest.contents: contents is not specified")
    previous: dict[str, Any] | None = None
    for index, content in enumerate(contents):
        at = f"contents[{index}]"
        _object(content, at, {"role", "parts"})
        role = content.get("role", "user")
        if role not in ("user", "model"):
            raise Invalid(f"Please use a valid role: user, model. ({at}.role = {role!r})")
        _parts(content.get("parts"), f"{at}.parts")
        _function_turn(content, previous, at)
        previous = content
    system = body.get("systemInstruction")
    if system is not None:
        _object(system, "systemInstruction", {"role", "parts"})
        _parts(system.get("parts"), "systemInstruction.parts")
        if any("text" not in part for part in system["parts"]):
            raise Invalid("systemInstruction: only text parts are supported")
    declared = _tools(body.get("tools"))
    _tool_config(body.get("toolConfig"), declared)
    _generation_config(body.get("generationConfig"))
    for index, setting in enumerate(body.get("safetySettings") or []):
        _object(setting, f"safetySettings[{index}]", {"category", "threshold"})


def declared_functions(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for tool in body.get("tools") or [] for d in tool.get("functionDeclarations") or []]


def check_embed(body: Any, model: str, *, in_batch: bool = False) -> None:
    """Raise `Invalid` for an ``EmbedContentRequest`` Gemini would refuse."""
    _object(body, "request", _EMBED_FIELDS)
    if in_batch and body.get("model") != model:
        raise Invalid(
            f"Model name in the request ({body.get('model')!r}) does not match the model in "
            f"the URL ({model!r})"
        )
    content = body.get("content")
    _object(content, "content", {"role", "parts"})
    _parts(content.get("parts"), "content.parts")
    dimensions = body.get("outputDimensionality")
    if dimensions is not None and (not isinstance(dimensions, int) or dimensions < 1):
        raise Invalid("outputDimensionality must be a positive integer")


def _object(value: Any, at: str, fields: set[str]) -> None:
    if not isinstance(value, dict):
        raise Invalid(f"Invalid value at '{at}': expected an object")
    for name in value:
        if name not in fields:
            raise Invalid(
                f"Invalid JSON payload received. Unknown name \"{name}\" at '{at}': "
                "Cannot find field."
            )


def _parts(parts: Any, at: str) -> None:
    if not isinstance(parts, list) or not parts:
        raise Invalid(f"* {at}: contents.parts must not be empty.")
    for index, part in enumerate(parts):
        where = f"{at}[{index}]"
        _object(part, where, _PART_FIELDS)
        kinds = [name for name in part if name in _DATA_FIELDS]
        if len(kinds) != 1:
            raise Invalid(f"{where}: a part must hold exactly one of {sorted(_DATA_FIELDS)}")
        kind = kinds[0]
        value = part[kind]
        if kind == "text" and not isinstance(value, str):
            raise Invalid(f"{where}.text must be a string")
        if kind == "inlineData":
            _object(value, f"{where}.inlineData", {"mimeType", "data"})
            if not value.get("mimeType"):
                raise Invalid(f"{where}.inlineData.mimeType is required")
            try:
                base64.b64decode(value.get("data") or "", validate=True)
            except (binascii.Error, ValueError):
                raise Invalid(f"{where}.inlineData.data: invalid base64") from None
        if kind == "fileData":
            _object(value, f"{where}.fileData", {"mimeType", "fileUri"})
            if not value.get("fileUri"):
                raise Invalid(f"{where}.fileData.fileUri is required")
        if kind == "functionCall":
            _object(value, f"{where}.functionCall", {"id", "name", "args"})
            if not value.get("name") or not isinstance(value.get("args", {}), dict):
                raise Invalid(f"{where}.functionCall needs a name and object args")
        if kind == "functionResponse":
            _object(value, f"{where}.functionResponse", {"id", "name", "response"})
            if not value.get("name") or not isinstance(value.get("response"), dict):
                raise Invalid(f"{where}.functionResponse needs a name and an object response")


def _function_turn(content: dict[str, Any], previous: dict[str, Any] | None, at: str) -> None:
    """Function responses must answer, one for one, the calls of the model turn before."""
    answered = Counter(
        p["functionResponse"]["name"] for p in content["parts"] if "functionResponse" in p
    )
    if not answered:
        return
    called: Counter[str] = Counter()
    if previous is not None and previous.get("role") == "model":
        called = Counter(
            p["functionCall"]["name"] for p in previous["parts"] if "functionCall" in p
        )
    if content.get("role", "user") != "user" or answered != called:
        raise Invalid(
            f"{at}: Please ensure that function response turn comes immediately after a "
            "function call turn, and that the number of function response parts is equal to "
            "the number of function call parts of the function call turn."
        )


def _tools(tools: Any) -> set[str]:
    names: set[str] = set()
    if tools is None:
        return names
    if not isinstance(tools, list):
        raise Invalid("tools must be a list")
    for index, tool in enumerate(tools):
        _object(tool, f"tools[{index}]", {"functionDeclarations", "googleSearch", "codeExecution"})
        for position, declaration in enumerate(tool.get("functionDeclarations") or []):
            at = f"tools[{index}].functionDeclarations[{position}]"
            _object(
                declaration,
                at,
                {"name", "description", "parameters", "parametersJsonSchema", "response"},
            )
            name = declaration.get("name")
            if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
                raise Invalid(f"{at}.name: invalid function name {name!r}")
            if "parameters" in declaration and "parametersJsonSchema" in declaration:
                raise Invalid(f"{at}: parameters and parametersJsonSchema are exclusive")
            names.add(name)
    return names


def _tool_config(config: Any, declared: set[str]) -> None:
    if config is None:
        return
    _object(config, "toolConfig", {"functionCallingConfig"})
    calling = config.get("functionCallingConfig") or {}
    _object(calling, "toolConfig.functionCallingConfig", {"mode", "allowedFunctionNames"})
    mode = calling.get("mode", "AUTO")
    if mode not in _MODES:
        raise Invalid(f"Invalid value at 'tool_config.function_calling_config.mode' ({mode!r})")
    allowed = calling.get("allowedFunctionNames")
    if allowed is not None:
        if mode not in ("ANY", "VALIDATED"):
            raise Invalid("allowedFunctionNames can only be set when the mode is ANY or VALIDATED")
        unknown = set(allowed) - declared
        if unknown:
            raise Invalid(f"allowedFunctionNames names undeclared functions: {sorted(unknown)}")


def _generation_config(config: Any) -> None:
    if config is None:
        return
    _object(config, "generationConfig", _GENERATION_FIELDS)
    if "responseJsonSchema" in config and "responseSchema" in config:
        raise Invalid("responseSchema and responseJsonSchema are exclusive")
    if ("responseJsonSchema" in config or "responseSchema" in config) and config.get(
        "responseMimeType"
    ) != "application/json":
        raise Invalid("a response schema needs responseMimeType application/json")
    stops = config.get("stopSequences")
    if stops is not None and (not isinstance(stops, list) or len(stops) > 5):
        raise Invalid("stopSequences: at most 5 strings")
    count = config.get("candidateCount")
    if count is not None and not (isinstance(count, int) and 1 <= count <= 8):
        raise Invalid("candidateCount must be in [1, 8]")
    if "logprobs" in config and not config.get("responseLogprobs"):
        raise Invalid("logprobs needs responseLogprobs")
    for name in ("maxOutputTokens", "seed", "logprobs"):
        if name in config and not isinstance(config[name], int):
            raise Invalid(f"generationConfig.{name} must be an integer")
    thinking = config.get("thinkingConfig")
    if thinking is not None:
        _object(thinking, "generationConfig.thinkingConfig", _THINKING_FIELDS)
        level = thinking.get("thinkingLevel")
        if level is not None and level not in _THINKING_LEVELS:
            raise Invalid(f"Invalid value at 'thinking_config.thinking_level' ({level!r})")


def check_batch(body: Any) -> None:
    batch = body.get("batch") if isinstance(body, dict) else None
    if not isinstance(batch, dict) or not batch.get("displayName"):
        raise Invalid("* BatchGenerateContentRequest.batch.display_name: required")
    requests = ((batch.get("inputConfig") or {}).get("requests") or {}).get("requests")
    if not isinstance(requests, list) or not requests:
        raise Invalid("* batch.input_config: inlined requests are required")
    for index, item in enumerate(requests):
        if not isinstance(item, dict) or not set(item) <= {"request", "metadata"}:
            raise Invalid(f"requests[{index}]: only request and metadata are allowed")
        try:
            check_generate(item.get("request"))
        except Invalid as exc:
            raise Invalid(f"requests[{index}].request: {exc}") from None


def check_embed_batch(body: Any, model: str) -> None:
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests or len(requests) > 100:
        raise Invalid("* BatchEmbedContentsRequest.requests: 1 to 100 requests are required")
    for request in requests:
        check_embed(request, model, in_batch=True)
