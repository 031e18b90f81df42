"""A Responses request as a chat completions request, for upstreams without /v1/responses.

`to_chat` translates what chat completions can express (the table `RESPONSE_FIELDS`, shown
in docs/providers.md) and refuses the rest with a `bad_request` naming the field, before
anything is sent: built-in tools, ``previous_response_id``, ``background``. The provider's
own chat field table then judges the chat request as for any chat call.
"""

from __future__ import annotations

from typing import Any

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.fields import NO, YES, FieldSupport, FieldTable, Support, partial


def _as(note: str) -> FieldSupport:
    return FieldSupport(Support.yes, note)


# OpenAI's Responses request body ("Create a model response"), and what translation makes
# of each field.
RESPONSE_FIELDS: FieldTable = {
    "model": YES,
    "input": partial(
        "text, messages (input_text, input_image, input_file with file_data), function_call "
        "and function_call_output items; reasoning items are skipped; item_reference rejected"
    ),
    "instructions": _as("as a leading system message"),
    "background": NO,
    "conversation": NO,
    "include": partial("reasoning.encrypted_content only (there is none to include)"),
    "max_output_tokens": _as("as max_completion_tokens"),
    "max_tool_calls": NO,
    "metadata": _as("kept on the response, not sent"),
    "parallel_tool_calls": YES,
    "previous_response_id": partial(
        "gateway calls and batch lines naming a response kept here (store true): its turns "
        "are sent as input"
    ),
    "prompt": NO,
    "prompt_cache_key": YES,
    "reasoning": partial("effort as reasoning_effort; summary rejected"),
    "safety_identifier": YES,
    "service_tier": YES,
    "store": _as("decides whether datamill keeps the response (GET /v1/responses/{id})"),
    "stream": YES,
    "stream_options": _as("accepted, nothing to obfuscate"),
    "temperature": YES,
    "text": partial("format json_schema and json_object as response_format; verbosity"),
    "tool_choice": partial("auto, none, required and a named function"),
    "tools": partial("function tools; built-in tools (web_search, file_search...) rejected"),
    "top_logprobs": NO,
    "top_p": YES,
    "truncation": partial("disabled only"),
    "user": YES,
}

# Fields copied to the chat request unchanged.
_SAME = (
    "parallel_tool_calls",
    "prompt_cache_key",
    "safety_identifier",
    "service_tier",
    "temperature",
    "top_p",
    "user",
)
# Asked for nothing when set to one of these.
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "background": (None, False),
    "conversation": (None,),
    "max_tool_calls": (None,),
    "previous_response_id": (None, ""),
    "prompt": (None,),
    "top_logprobs": (None, 0),
    "truncation": (None, "disabled"),
}
_WHY = {
    "background": "background responses need a store datamill keeps polling; send it in "
    "the foreground",
    "conversation": "conversations are state datamill does not keep",
    "max_tool_calls": "chat completions cannot cap built-in tool calls",
    "previous_response_id": "no response with this id is kept here (the gateway keeps those "
    "it answered with store true, in their project; batch results are not kept); send the "
    "earlier turns in input",
    "prompt": "stored prompt templates live at OpenAI",
    "top_logprobs": "logprobs are not translated",
    "truncation": "only truncation 'disabled' can be expressed",
}


def refused(field: str, why: str) -> ProviderError:
    """The `bad_request` for a Responses field (or a value of it) translation cannot take."""
    message = (
        f"`{field}` cannot be translated to chat completions: {why}. Remove it, or send this "
        "request to a deployment whose upstream has /v1/responses (docs/providers.md)"
    )
    return ProviderError(
        ErrorCategory.bad_request,
        message,
        body={"error": {"message": message, "type": "invalid_request_error", "param": field}},
        param=field,
    )


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat completions request for the Responses request ``body``."""
    for field, value in body.items():
        if field not in RESPONSE_FIELDS:
            raise refused(field, "it is not a Responses request field datamill knows")
        if field in _NEUTRAL and value not in _NEUTRAL[field]:
            raise refused(field, _WHY[field])
    chat: dict[str, Any] = {"model": body["model"]}
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions:
        if not isinstance(instructions, str):
            raise refused("instructions", "it must be a string")
        messages.append({"role": "system", "content": instructions})
    messages += _messages(body.get("input"))
    chat["messages"] = messages
    for field in _SAME:
        if body.get(field) is not None:
            chat[field] = body[field]
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    _include(body.get("include"))
    _reasoning(body.get("reasoning"), chat)
    _text(body.get("text"), chat)
    tools = body.get("tools")
    if tools:
        chat["tools"] = _tools(tools)
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("stream"):
        chat["stream"] = True
    return chat


# -- input ---------------------------------------------------------------------------------


def _messages(given: Any) -> list[dict[str, Any]]:
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    if not isinstance(given, list) or not given:
        raise refused("input", "it must be a string or a non-empty array of items")
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(given):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise refused(where, "an item must be an object")
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            call = {
                "id": _text_of(item, "call_id", where),
                "type": "function",
                "function": {
                    "name": _text_of(item, "name", where),
                    "arguments": _text_of(item, "arguments", where),
                },
            }
            last = messages[-1] if messages else None
            # Calls made in one turn are one assistant message with several tool_calls.
            if last is not None and last["role"] == "assistant" and _open_turn(last):
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            content = output if isinstance(output, str) else _parts(output, f"{where}.output")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": _text_of(item, "call_id", where),
                    "content": content,
                }
            )
        elif kind == "reasoning":
            continue  # a reasoning model's own notes: chat completions has no place for them
        else:
            raise refused(f"{where}.type", f"items of type {kind!r} have no chat equivalent")
    if not messages:
        raise refused("input", "it holds no message")
    return messages


def _open_turn(message: dict[str, Any]) -> bool:
    """An assistant message that function calls of the same turn may join."""
    return "tool_calls" in message or message.get("content") is not None


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise refused(f"{where}.role", "it must be user, assistant, system or developer")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    parts = _parts(content, f"{where}.content")
    if role != "user":
        # Chat completions takes only text from assistant, system and developer messages.
        texts = [part.get("text") for part in parts if part["type"] == "text"]
        if len(texts) != len(parts):
            raise refused(f"{where}.content", f"{role} messages can hold only text")
        return {"role": role, "content": "".join(str(text) for text in texts)}
    return {"role": role, "content": parts}


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        raise refused(where, "it must be a string or an array of content parts")
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        at = f"{where}[{index}]"
        if not isinstance(part, dict):
            raise refused(at, "a content part must be an object")
        kind = part.get("type")
        if kind in ("input_text", "output_text"):
            parts.append({"type": "text", "text": _text_of(part, "text", at)})
        elif kind == "refusal":
            parts.append({"type": "text", "text": _text_of(part, "refusal", at)})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                raise refused(f"{at}.image_url", "images need an image_url (file_id is not kept)")
            image: dict[str, Any] = {"url": url}
            if part.get("detail") is not None:
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_file":
            data = part.get("file_data")
            if not isinstance(data, str):
                raise refused(f"{at}.file_data", "files need file_data (file_id and file_url)")
            file = {"file_data": data}
            if isinstance(part.get("filename"), str):
                file["filename"] = part["filename"]
            parts.append({"type": "file", "file": file})
        else:
            raise refused(f"{at}.type", f"content parts of type {kind!r} have no chat equivalent")
    return parts


def _text_of(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise refused(f"{where}.{key}", "it must be a string")
    return value


# -- options -------------------------------------------------------------------------------


def _include(include: Any) -> None:
    for index, entry in enumerate(include or ()):
        if entry != "reasoning.encrypted_content":
            raise refused(f"include[{index}]", f"{entry!r} has no chat equivalent")


def _reasoning(reasoning: Any, chat: dict[str, Any]) -> None:
    if reasoning is None:
        return
    if not isinstance(reasoning, dict):
        raise refused("reasoning", "it must be an object")
    for key, value in reasoning.items():
        if value is None:
            continue
        if key == "effort":
            chat["reasoning_effort"] = value
        else:
            raise refused(f"reasoning.{key}", "only reasoning.effort has a chat equivalent")


def _text(text: Any, chat: dict[str, Any]) -> None:
    if text is None:
        return
    if not isinstance(text, dict):
        raise refused("text", "it must be an object")
    if text.get("verbosity") is not None:
        chat["verbosity"] = text["verbosity"]
    fmt = text.get("format")
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return
    if kind == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif kind == "json_schema":
        schema = {
            key: fmt[key] for key in ("name", "schema", "strict", "description") if key in fmt
        }
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    else:
        raise refused("text.format.type", "it must be text, json_object or json_schema")


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise refused("tools", "it must be an array")
    translated = []
    for index, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function" or not isinstance(tool, dict):
            raise refused(
                f"tools[{index}].type",
                f"the built-in tool {kind!r} has no chat equivalent (function tools do)",
            )
        function = {
            key: tool[key]
            for key in ("name", "description", "parameters", "strict")
            if tool.get(key) is not None
        }
        translated.append({"type": "function", "function": function})
    return translated


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise refused("tool_choice", "it must be auto, none, required or a named function")
