"""OpenAI chat completion requests to Gemini ``generateContent`` requests.

Reference: Gemini API, "Generating content" (``GenerateContentRequest``, ``Content``,
``Part``, ``GenerationConfig``, ``Tool``, ``ToolConfig``). What Gemini cannot express is
refused with a `bad_request` naming the field (``messages[2].name``), never dropped.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from typing import Any
from urllib.parse import urlsplit

import orjson

from datamill.providers.fields import (
    CHAT_FIELDS,
    MESSAGE_FEATURES,
    NO,
    YES,
    FieldTable,
    partial,
    reject_unsupported,
)
from datamill.providers.gemini.errors import PROVIDER, refused
from datamill.providers.gemini.generation import generation_config, translate_tools
from datamill.providers.gemini.options import GeminiOptions

CHAT_TABLE: FieldTable = {
    **dict.fromkeys(CHAT_FIELDS + MESSAGE_FEATURES, NO),
    "model": YES,
    "messages": YES,
    "frequency_penalty": YES,
    "logprobs": YES,
    "top_logprobs": YES,
    "max_completion_tokens": YES,
    "max_tokens": YES,
    "n": YES,
    "presence_penalty": YES,
    "response_format": YES,
    "seed": YES,
    "stop": YES,
    "stream": YES,
    "stream_options": YES,
    "temperature": YES,
    "tool_choice": YES,
    "top_p": YES,
    "modalities": partial('only ["text"]'),
    "reasoning_effort": partial(
        "minimal/low/medium/high/xhigh as thinkingLevel (Gemini 3), none as thinkingBudget 0 "
        "(models that can stop thinking)"
    ),
    "tools": partial("function tools (parametersJsonSchema); custom tools are rejected"),
    "prompt_cache_key": partial("accepted, not sent: Gemini caches prompt prefixes itself"),
    "safety_identifier": partial("accepted, not sent: Gemini has no end-user identifier"),
    "user": partial("accepted, not sent: Gemini has no end-user identifier"),
    "messages[].system": partial("leading system/developer messages, as systemInstruction"),
    "messages[].image_url": partial(
        "data URLs as inlineData; http(s) URLs with an image file extension as fileData"
    ),
    "messages[].input_audio": YES,
    "messages[].file": partial("data URLs as inlineData; file_id is rejected"),
    "messages[].tool_calls": YES,
    "messages[].tool": YES,
}

_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}
_DETAIL = {"low": "MEDIA_RESOLUTION_LOW", "high": "MEDIA_RESOLUTION_HIGH"}


def translate_chat(body: dict[str, Any], options: GeminiOptions) -> dict[str, Any]:
    """The ``generateContent`` body of an OpenAI chat completion body (``model`` goes in the
    URL, not the body)."""
    reject_unsupported(body, CHAT_TABLE, provider=PROVIDER)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise refused("messages", "must be a non-empty array of messages")
    system, contents = translate_messages(messages, options)
    request: dict[str, Any] = {"contents": contents}
    if system:
        request["systemInstruction"] = {"parts": system}
    tools, tool_config = translate_tools(body)
    if tools:
        request["tools"] = tools
    if tool_config:
        request["toolConfig"] = tool_config
    if options.safety_settings:
        request["safetySettings"] = [s.model_dump() for s in options.safety_settings]
    config = generation_config(body)
    if config:
        request["generationConfig"] = config
    return request


# -- messages ---------------------------------------------------------------------------------


def translate_messages(
    messages: list[Any], options: GeminiOptions
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """System parts and contents; consecutive turns of one role merge into one content, as
    Gemini wants user and model turns to alternate."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool call id -> function name, from assistant turns
    for index, message in enumerate(messages):
        at = f"messages[{index}]"
        if not isinstance(message, dict):
            raise refused(at, "must be an object")
        role = message.get("role")
        if message.get("name") not in (None, ""):
            raise refused(
                f"{at}.name", "cannot be expressed (Gemini turns have no participant name)"
            )
        if role in ("system", "developer"):
            if contents:
                # Gemini has one systemInstruction, before the turns: moving a later system
                # message there would change what it means.
                raise refused(f"{at}.role", "a system message after the first turn cannot be sent")
            system += _text_parts(message.get("content"), f"{at}.content")
            continue
        if role == "user":
            gemini_role, parts = "user", _user_parts(message, at, options)
        elif role == "assistant":
            gemini_role, parts = "model", _assistant_parts(message, at, call_names)
        elif role == "tool":
            gemini_role, parts = "user", [_tool_result(message, at, call_names)]
        else:
            raise refused(f"{at}.role", f"{role!r} is not a role Gemini can take")
        if contents and contents[-1]["role"] == gemini_role:
            contents[-1]["parts"] += parts
        else:
            contents.append({"role": gemini_role, "parts": parts})
    if not contents:
        raise refused("messages", "needs at least one user or assistant message")
    return system, contents


def _text_parts(content: Any, at: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise refused(at, "must be a string or an array of text parts")
    parts = []
    for index, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text":
            raise refused(f"{at}[{index}]", "only text parts can be sent here")
        if not isinstance(part.get("text"), str):
            raise refused(f"{at}[{index}].text", "must be a string")
        if part["text"]:
            parts.append({"text": part["text"]})
    return parts


def _user_parts(message: dict[str, Any], at: str, options: GeminiOptions) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        parts = [{"text": content}] if content else []
    elif isinstance(content, list):
        parts = [
            _content_part(part, f"{at}.content[{i}]", options) for i, part in enumerate(content)
        ]
        parts = [part for part in parts if part.get("text") != ""]
    else:
        raise refused(f"{at}.content", "must be a string or an array of content parts")
    if not parts:
        raise refused(f"{at}.content", "is empty (Gemini refuses a turn without parts)")
    return parts


def _content_part(part: Any, at: str, options: GeminiOptions) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text" and isinstance(part.get("text"), str):
        return {"text": part["text"]}
    if kind == "image_url" and isinstance(part.get("image_url"), dict):
        return _image_part(part["image_url"], f"{at}.image_url", options)
    if kind == "input_audio" and isinstance(part.get("input_audio"), dict):
        audio = part["input_audio"]
        mime = _AUDIO_TYPES.get(audio.get("format"))
        if mime is None:
            raise refused(f"{at}.input_audio.format", "must be wav or mp3")
        return {"inlineData": {"mimeType": mime, "data": _base64(audio.get("data"), at)}}
    if kind == "file" and isinstance(part.get("file"), dict):
        return _file_part(part["file"], f"{at}.file")
    raise refused(at, f"content parts of type {kind!r} cannot be sent to Gemini")


def _image_part(image: dict[str, Any], at: str, options: GeminiOptions) -> dict[str, Any]:
    url = image.get("url")
    if not isinstance(url, str) or not url:
        raise refused(f"{at}.url", "must be a URL or a data URL")
    if url.startswith("data:"):
        mime, data = _data_url(url, f"{at}.url")
        part: dict[str, Any] = {"inlineData": {"mimeType": mime, "data": data}}
    elif url.startswith(("http://", "https://")):
        if not options.external_image_urls:
            raise refused(f"{at}.url", "is an http(s) URL, which this deployment does not send")
        guessed = mimetypes.guess_type(urlsplit(url).path)[0]
        if guessed is None or not guessed.startswith("image/"):
            raise refused(
                f"{at}.url",
                "has no image file extension: Gemini needs the MIME type of a file URL "
                "(send a data URL, or a URL ending in .png, .jpg, .webp, ...)",
            )
        part = {"fileData": {"mimeType": guessed, "fileUri": url}}
    else:
        raise refused(f"{at}.url", "must be an http(s) URL or a data URL")
    detail = image.get("detail")
    if detail in _DETAIL:
        part["mediaResolution"] = {"level": _DETAIL[detail]}
    elif detail not in (None, "auto"):
        raise refused(f"{at}.detail", "must be auto, low or high")
    return part


def _file_part(file: dict[str, Any], at: str) -> dict[str, Any]:
    if file.get("file_id") is not None:
        raise refused(f"{at}.file_id", "an OpenAI file id means nothing to Gemini; send file_data")
    data = file.get("file_data")
    if not isinstance(data, str) or not data:
        raise refused(f"{at}.file_data", "is missing")
    if data.startswith("data:"):
        mime, payload = _data_url(data, f"{at}.file_data")
    else:
        mime = mimetypes.guess_type(str(file.get("filename") or ""))[0] or ""
        if not mime:
            raise refused(f"{at}.file_data", "needs a data URL or a filename that says its type")
        payload = _base64(data, f"{at}.file_data")
    return {"inlineData": {"mimeType": mime, "data": payload}}


def _data_url(url: str, at: str) -> tuple[str, str]:
    head, comma, data = url.partition(",")
    mime, _, encoding = head.removeprefix("data:").partition(";")
    if not comma or encoding != "base64" or not mime:
        raise refused(at, "must be a base64 data URL (data:<type>;base64,...)")
    return mime, _base64(data, at)


def _base64(data: Any, at: str) -> str:
    if not isinstance(data, str) or not data:
        raise refused(at, "must hold base64 data")
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise refused(at, "is not valid base64") from None
    return data


def _assistant_parts(
    message: dict[str, Any], at: str, call_names: dict[str, str]
) -> list[dict[str, Any]]:
    for field in ("audio", "function_call"):
        if message.get(field) is not None:
            raise refused(f"{at}.{field}", "cannot be expressed")
    if message.get("refusal") not in (None, ""):
        raise refused(f"{at}.refusal", "cannot be expressed (Gemini turns have no refusal)")
    content = message.get("content")
    parts = [] if content is None else _text_parts(content, f"{at}.content")
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise refused(f"{at}.tool_calls", "must be an array")
    for index, call in enumerate(calls):
        parts.append(_function_call(call, f"{at}.tool_calls[{index}]", call_names))
    if not parts:
        raise refused(f"{at}.content", "is empty (Gemini refuses a turn without parts)")
    return parts


def _function_call(call: Any, at: str, call_names: dict[str, str]) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or call.get("type", "function") != "function":
        raise refused(at, "only function tool calls can be sent to Gemini")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise refused(f"{at}.function.name", "is missing")
    try:
        args = orjson.loads(function.get("arguments") or "{}")
    except (orjson.JSONDecodeError, TypeError):
        raise refused(f"{at}.function.arguments", "is not valid JSON") from None
    if not isinstance(args, dict):
        raise refused(f"{at}.function.arguments", "must be a JSON object (Gemini args are one)")
    if isinstance(call.get("id"), str):
        call_names[call["id"]] = name
    part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
    # Gemini 3 refuses a history whose function calls lost their thought signature; the
    # answer carried it where Google's own OpenAI layer does (see response.py).
    signature = ((call.get("extra_content") or {}).get("google") or {}).get("thought_signature")
    if isinstance(signature, str) and signature:
        part["thoughtSignature"] = signature
    return part


def _tool_result(message: dict[str, Any], at: str, call_names: dict[str, str]) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    name = call_names.get(call_id) if isinstance(call_id, str) else None
    if name is None:
        raise refused(
            f"{at}.tool_call_id",
            f"{call_id!r} matches no earlier assistant tool call (Gemini needs its function name)",
        )
    content = message.get("content")
    if isinstance(content, list):
        text = "".join(part["text"] for part in _text_parts(content, f"{at}.content"))
    elif isinstance(content, str):
        text = content
    else:
        raise refused(f"{at}.content", "must be a string or an array of text parts")
    return {"functionResponse": {"name": name, "response": {"output": text}}}
