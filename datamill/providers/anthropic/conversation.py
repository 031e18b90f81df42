"""OpenAI chat messages -> Anthropic's system prompt and turns.

System and developer messages before the conversation's first other message are the
top-level ``system`` prompt; one later has no place there and is refused. Consecutive turns of
one role are merged into one turn of content blocks (Anthropic would merge them too);
``tool`` messages become ``tool_result`` blocks of the user turn after the assistant's
``tool_use`` blocks; image parts become image blocks (a data URL as base64, an http(s) URL as
a url source) and PDF file parts document blocks.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from datamill.providers.anthropic.table import refuse

_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.S)


def conversation(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system text blocks, Anthropic messages) for OpenAI ``messages``."""
    if not isinstance(messages, list) or not messages:
        raise refuse("messages", "must be a non-empty list")
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise refuse(where, "must be an object")
        role = message.get("role")
        if message.get("name") is not None:
            raise refuse(f"{where}.name", "cannot be expressed (no participant names)")
        if role in ("system", "developer"):
            if turns:
                raise refuse(
                    where,
                    f"is a {role} message after the conversation started, which cannot be "
                    "expressed (only leading system messages become the system prompt)",
                )
            system += _texts(message.get("content"), f"{where}.content")
            continue
        if role == "user":
            blocks = _user_content(message.get("content"), where)
            anthropic_role = "user"
        elif role == "assistant":
            blocks = _assistant_content(message, where)
            anthropic_role = "assistant"
        elif role == "tool":
            blocks = [_tool_result(message, where)]
            anthropic_role = "user"
        elif role == "function":
            raise refuse(where, "function messages cannot be expressed (use tools)")
        else:
            raise refuse(f"{where}.role", f"{role!r} is not a chat role")
        if turns and turns[-1]["role"] == anthropic_role:
            turns[-1]["content"] = _blocks(turns[-1]["content"]) + _blocks(blocks)
        else:
            turns.append({"role": anthropic_role, "content": blocks})
    if not turns:
        raise refuse("messages", "holds only system messages; Anthropic needs a user message")
    return system, turns


def _blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _texts(content: Any, where: str) -> list[dict[str, Any]]:
    """Text-only content (system, tool results) as text blocks."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise refuse(where, "must be a string or a list of text parts")
    blocks = []
    for index, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text":
            raise refuse(f"{where}[{index}]", "only text parts can be expressed here")
        blocks.append({"type": "text", "text": _text(part, f"{where}[{index}]")})
    return blocks


def _text(part: dict[str, Any], where: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise refuse(f"{where}.text", "must be a string")
    return text


def _user_content(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        raise refuse(f"{where}.content", "must be a string or a non-empty list of parts")
    blocks = []
    for index, part in enumerate(content):
        at = f"{where}.content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": _text(part, at)})
        elif kind == "image_url":
            blocks.append(_image(part.get("image_url"), f"{at}.image_url"))
        elif kind == "file":
            blocks.append(_document(part.get("file"), f"{at}.file"))
        elif kind == "input_audio":
            raise refuse(at, "audio input cannot be expressed")
        else:
            raise refuse(f"{at}.type", f"{kind!r} cannot be expressed")
    return blocks


def _image(image: Any, where: str) -> dict[str, Any]:
    if not isinstance(image, dict) or not isinstance(image.get("url"), str):
        raise refuse(where, "must be an object with a url")
    if image.get("detail") not in (None, "auto"):
        raise refuse(f"{where}.detail", "cannot be expressed (Anthropic has no detail level)")
    url: str = image["url"]
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise refuse(f"{where}.url", "must be an http(s) URL or a base64 data URL")
    source = {"type": "base64", "media_type": match["type"], "data": match["data"]}
    return {"type": "image", "source": source}


def _document(file: Any, where: str) -> dict[str, Any]:
    if not isinstance(file, dict):
        raise refuse(where, "must be an object")
    if file.get("file_id") is not None:
        raise refuse(f"{where}.file_id", "cannot be expressed (OpenAI file ids mean nothing here)")
    match = _DATA_URL.fullmatch(file.get("file_data") or "")
    if match is None or match["type"] != "application/pdf":
        raise refuse(f"{where}.file_data", "must be a base64 data URL of a PDF")
    block: dict[str, Any] = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": match["data"]},
    }
    if isinstance(file.get("filename"), str):
        block["title"] = file["filename"]
    return block


def _assistant_content(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    for field in ("refusal", "audio", "function_call"):
        if message.get(field) is not None:
            raise refuse(f"{where}.{field}", "cannot be expressed in an assistant turn")
    content = message.get("content")
    blocks: list[dict[str, Any]] = []
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for index, part in enumerate(content):
            at = f"{where}.content[{index}]"
            if not isinstance(part, dict) or part.get("type") != "text":
                raise refuse(at, "only text parts can be expressed in an assistant turn")
            blocks.append({"type": "text", "text": _text(part, at)})
    elif content is not None:
        raise refuse(f"{where}.content", "must be a string, a list of parts or null")
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise refuse(f"{where}.tool_calls", "must be a list")
    for index, call in enumerate(calls):
        blocks.append(_tool_use(call, f"{where}.tool_calls[{index}]"))
    if not blocks:
        # Anthropic refuses empty content, and dropping the turn would change the conversation.
        raise refuse(f"{where}.content", "is empty, which cannot be expressed")
    return blocks


def _tool_use(call: Any, where: str) -> dict[str, Any]:
    if not isinstance(call, dict) or call.get("type", "function") != "function":
        raise refuse(f"{where}.type", "other than function cannot be expressed")
    function = call.get("function")
    if not isinstance(call.get("id"), str) or not isinstance(function, dict):
        raise refuse(where, "must have an id and a function")
    if not isinstance(function.get("name"), str):
        raise refuse(f"{where}.function.name", "must be a name")
    arguments = function.get("arguments")
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else None
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise refuse(f"{where}.function.arguments", "must be a JSON object (as a string)")
    return {"type": "tool_use", "id": call["id"], "name": function["name"], "input": parsed}


def _tool_result(message: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise refuse(f"{where}.tool_call_id", "must be the id of a tool call")
    content = message.get("content")
    blocks = _texts(content, f"{where}.content")
    return {
        "type": "tool_result",
        "tool_use_id": call_id,
        "content": content if isinstance(content, str) else blocks,
    }
