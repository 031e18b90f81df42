"""Anthropic's Messages wire format, as the mock Anthropic server needs it: the validation
of a request (Anthropic refuses what it does not know, so a bad translation fails loudly), a
deterministic answer, and the event sequence that streams that answer."""

from __future__ import annotations

import hashlib
import math
import random
import re
from typing import Any

import orjson

from datamill.providers.sim.schema_instance import instance_for_schema

VERSIONS = ("2023-06-01", "2026-10-21")
# Since 2026-10-21 the sampling parameters are refused, even at their defaults.
SAMPLING_DROPPED_IN = "2026-10-21"
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
REFUSING_MODEL = "mock-refusal"

_TOP_LEVEL = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "service_tier",
    "cache_control",
}
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_BLOCK_FIELDS = {
    "text": {"type", "text", "cache_control", "citations"},
    "image": {"type", "source", "cache_control"},
    "document": {"type", "source", "title", "context", "citations", "cache_control"},
    "tool_use": {"type", "id", "name", "input", "cache_control"},
    "tool_result": {"type", "tool_use_id", "content", "is_error", "cache_control"},
    "thinking": {"type", "thinking", "signature"},
    "redacted_thinking": {"type", "data"},
}
_USER_ONLY = {"image", "document", "tool_result"}
_ASSISTANT_ONLY = {"tool_use", "thinking", "redacted_thinking"}


class Invalid(Exception):
    """A request Anthropic would refuse with 400 invalid_request_error."""


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(body: Any, version: str) -> None:
    """Raise `Invalid` with Anthropic's kind of message for a request it would refuse."""
    if not isinstance(body, dict):
        raise Invalid("The request body must be a JSON object.")
    for key in body:
        if key not in _TOP_LEVEL:
            raise Invalid(f"{key}: Extra inputs are not permitted")
    for key in ("model", "messages", "max_tokens"):
        if key not in body:
            raise Invalid(f"{key}: Field required")
    if not isinstance(body["model"], str) or not body["model"]:
        raise Invalid("model: Input should be a valid string")
    if not _integer(body["max_tokens"]) or body["max_tokens"] < 0:
        raise Invalid("max_tokens: Input should be a valid non-negative integer")
    if version >= SAMPLING_DROPPED_IN:
        for key in ("temperature", "top_p", "top_k"):
            if key in body:
                raise Invalid(f"`{key}` is deprecated for this model.")
    for key in ("temperature", "top_p"):
        if key in body and (not _number(body[key]) or not 0 <= body[key] <= 1):
            raise Invalid(f"{key}: Input should be less than or equal to 1")
    if "top_k" in body and (not _integer(body["top_k"]) or body["top_k"] < 0):
        raise Invalid("top_k: Input should be a non-negative integer")
    _system(body.get("system"))
    stops = body.get("stop_sequences", [])
    if not isinstance(stops, list) or not all(isinstance(stop, str) for stop in stops):
        raise Invalid("stop_sequences: Input should be a valid list of strings")
    metadata = body.get("metadata", {})
    if not isinstance(metadata, dict) or set(metadata) - {"user_id"}:
        raise Invalid("metadata: Extra inputs are not permitted")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise Invalid("stream: Input should be a valid boolean")
    if body.get("service_tier", "auto") not in ("auto", "standard_only"):
        raise Invalid("service_tier: Input should be 'auto' or 'standard_only'")
    if body.get("cache_control", {"type": "ephemeral"}) != {"type": "ephemeral"}:
        raise Invalid("cache_control: Input should be an ephemeral cache control")
    names = _tools(body.get("tools", []))
    thinking = _thinking(body.get("thinking"), body["max_tokens"])
    _tool_choice(body.get("tool_choice"), names, thinking=thinking)
    _output_config(body.get("output_config"))
    _messages(body["messages"])


def _system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise Invalid("system: Input should be a valid string or list of text blocks")
    for index, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise Invalid(f"system.{index}: Input should be a text block")
        _block(block, f"system.{index}", "system")


def _tools(tools: Any) -> set[str]:
    if not isinstance(tools, list):
        raise Invalid("tools: Input should be a valid list")
    names: set[str] = set()
    for index, tool in enumerate(tools):
        where = f"tools.{index}"
        if not isinstance(tool, dict):
            raise Invalid(f"{where}: Input should be an object")
        extra = set(tool) - {
            "name",
            "description",
            "input_schema",
            "strict",
            "type",
            "cache_control",
        }
        if extra:
            raise Invalid(f"{where}.{sorted(extra)[0]}: Extra inputs are not permitted")
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            raise Invalid(f"{where}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise Invalid(f"{where}.input_schema.type: Input should be 'object'")
        if name in names:
            raise Invalid("tools: Tool names must be unique.")
        names.add(name)
    return names


def _thinking(thinking: Any, max_tokens: int) -> bool:
    if thinking is None:
        return False
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not _integer(budget) or not 1024 <= budget < max_tokens:
            raise Invalid("thinking.budget_tokens: must be at least 1024 and less than max_tokens")
        return True
    if kind in ("adaptive", "disabled"):
        return bool(kind == "adaptive")
    raise Invalid("thinking.type: Input should be 'enabled', 'adaptive' or 'disabled'")


def _tool_choice(choice: Any, names: set[str], *, thinking: bool) -> None:
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    allowed = {"auto": {"type", "disable_parallel_tool_use"}, "none": {"type"}}
    allowed["any"] = allowed["auto"]
    allowed["tool"] = allowed["auto"] | {"name"}
    if kind not in allowed:
        raise Invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    assert isinstance(choice, dict)
    if set(choice) - allowed[kind]:
        raise Invalid(f"tool_choice.{kind}: Extra inputs are not permitted")
    if kind in ("any", "tool") and not names:
        raise Invalid("tool_choice: tool_choice may only be specified while providing tools.")
    if kind == "tool" and choice.get("name") not in names:
        raise Invalid(f"tool_choice.name: no tool named {choice.get('name')!r}")
    if thinking and kind in ("any", "tool"):
        raise Invalid("Thinking may not be enabled when tool_choice forces tool use.")


def _output_config(config: Any) -> None:
    if config is None:
        return
    if not isinstance(config, dict) or set(config) - {"effort", "format"}:
        raise Invalid("output_config: Extra inputs are not permitted")
    if config.get("effort", "high") not in ("low", "medium", "high", "xhigh", "max"):
        raise Invalid(
            "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"
        )
    form = config.get("format")
    if form is not None and (
        not isinstance(form, dict)
        or form.get("type") != "json_schema"
        or not isinstance(form.get("schema"), dict)
    ):
        raise Invalid("output_config.format: Input should be a json_schema format")


def _messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages: at least one message is required")
    turns: list[tuple[str, list[dict[str, Any]], int]] = []  # merged: role, blocks, first index
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict) or set(message) - {"role", "content"}:
            raise Invalid(f"{where}: Extra inputs are not permitted")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise Invalid(f"{where}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        final = index == len(messages) - 1 and role == "assistant"
        if isinstance(content, str):
            if not content and not final:
                raise Invalid(f"{where}: all messages must have non-empty content")
            blocks = [{"type": "text", "text": content}]
        elif isinstance(content, list) and content:
            blocks = content
            for position, block in enumerate(blocks):
                _block(block, f"{where}.content.{position}", role)
        else:
            raise Invalid(f"{where}: all messages must have non-empty content")
        # Consecutive turns of one role are combined into one turn.
        if turns and turns[-1][0] == role:
            turns[-1] = (role, turns[-1][1] + blocks, turns[-1][2])
        else:
            turns.append((role, blocks, index))
    _tool_pairs(turns)


def _block(block: Any, where: str, role: str) -> None:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind not in _BLOCK_FIELDS:
        raise Invalid(f"{where}: Input tag {kind!r} found using 'type' does not match any tag")
    assert isinstance(block, dict)
    extra = set(block) - _BLOCK_FIELDS[kind]
    if extra:
        raise Invalid(f"{where}.{kind}.{sorted(extra)[0]}: Extra inputs are not permitted")
    if (kind in _USER_ONLY and role != "user") or (kind in _ASSISTANT_ONLY and role != "assistant"):
        raise Invalid(f"{where}: {kind} blocks are not allowed in {role} messages")
    if kind == "text" and (not isinstance(block.get("text"), str) or not block["text"]):
        raise Invalid(f"{where}: text content blocks must be non-empty")
    if kind == "image":
        _source(block.get("source"), f"{where}.source", IMAGE_TYPES)
    if kind == "document":
        _source(block.get("source"), f"{where}.source", ("application/pdf",))
    if kind == "tool_use" and not (
        isinstance(block.get("id"), str)
        and isinstance(block.get("name"), str)
        and isinstance(block.get("input"), dict)
    ):
        raise Invalid(f"{where}: tool_use needs an id, a name and an input object")
    if kind == "tool_result":
        if not isinstance(block.get("tool_use_id"), str):
            raise Invalid(f"{where}.tool_use_id: Field required")
        content = block.get("content", "")
        if isinstance(content, list):
            for position, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") not in ("text", "image"):
                    raise Invalid(f"{where}.content.{position}: Input should be text or image")
                _block(part, f"{where}.content.{position}", "user")
        elif not isinstance(content, str):
            raise Invalid(f"{where}.content: Input should be a string or a list of blocks")


def _source(source: Any, where: str, media_types: tuple[str, ...]) -> None:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "url" and isinstance(source, dict) and isinstance(source.get("url"), str):
        return
    if kind != "base64":
        raise Invalid(f"{where}.type: Input should be 'base64' or 'url'")
    assert isinstance(source, dict)
    if source.get("media_type") not in media_types:
        raise Invalid(f"{where}.media_type: Input should be one of {', '.join(media_types)}")
    if not isinstance(source.get("data"), str) or not source["data"]:
        raise Invalid(f"{where}.data: Field required")


def _tool_pairs(turns: list[tuple[str, list[dict[str, Any]], int]]) -> None:
    """Every tool_use is answered by a tool_result in the next turn, and only then."""
    for position, (role, blocks, index) in enumerate(turns):
        if role == "assistant":
            asked = [b["id"] for b in blocks if b.get("type") == "tool_use"]
            if asked and position + 1 < len(turns):
                answered = {
                    b.get("tool_use_id")
                    for b in turns[position + 1][1]
                    if b.get("type") == "tool_result"
                }
                missing = [call for call in asked if call not in answered]
                if missing:
                    raise Invalid(
                        f"messages.{turns[position + 1][2]}: `tool_use` ids were found without "
                        f"`tool_result` blocks immediately after: {', '.join(missing)}. Each "
                        "`tool_use` block must have a corresponding `tool_result` block in the "
                        "next message."
                    )
        else:
            previous = turns[position - 1][1] if position else []
            asked_before = {b.get("id") for b in previous if b.get("type") == "tool_use"}
            for block in blocks:
                if block.get("type") == "tool_result" and block["tool_use_id"] not in asked_before:
                    raise Invalid(
                        f"messages.{index}: unexpected `tool_use_id` found in `tool_result` "
                        f"blocks: {block['tool_use_id']}. Each `tool_result` block must have a "
                        "corresponding `tool_use` block in the previous message."
                    )


# -- answers ----------------------------------------------------------------------------------


def key_of(body: dict[str, Any]) -> str:
    """What the answer is about: the last user text (or the tool results it answers)."""
    last = body["messages"][-1]
    content = last.get("content")
    if isinstance(content, str):
        return content
    texts = [b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"]
    if texts:
        return " ".join(texts)
    return "the tool results"


def _seeded(*parts: str) -> random.Random:
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _instance(schema: dict[str, Any], *seed: str) -> Any:
    try:
        return instance_for_schema(schema, _seeded(*seed))
    except ValueError:
        return {}


def _called_tools(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    tools = body.get("tools") or []
    choice = body.get("tool_choice") or {"type": "auto"}
    mentioned = [tool for tool in tools if tool["name"] in key]
    if choice["type"] == "tool":
        calls = [tool for tool in tools if tool["name"] == choice["name"]]
    elif choice["type"] == "any":
        calls = mentioned or tools[:1]
    elif choice["type"] == "auto":
        calls = mentioned
    else:
        calls = []
    return calls[:1] if choice.get("disable_parallel_tool_use") else calls


def _cached(body: dict[str, Any]) -> bool:
    if "cache_control" in body:
        return True
    blocks = [m["content"] for m in body["messages"] if isinstance(m["content"], list)]
    return any("cache_control" in block for content in blocks for block in content)


def answer(
    body: dict[str, Any], message_id: str, *, service_tier: str = "standard"
) -> dict[str, Any]:
    """The message the mock answers ``body`` (a valid request) with; deterministic but for
    the id."""
    key = key_of(body)
    content: list[dict[str, Any]] = []
    thinking = (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
    thought = f"The user asks about {key}; a short answer will do." if thinking else ""
    if thinking:
        signature = hashlib.sha256(thought.encode()).hexdigest()
        content.append({"type": "thinking", "thinking": thought, "signature": signature})
    stop_reason, stop_sequence = "end_turn", None
    calls = _called_tools(body, key)
    for number, tool in enumerate(calls):
        call_id = "toolu_" + hashlib.sha256(f"{message_id}:{number}".encode()).hexdigest()[:24]
        arguments = _instance(tool["input_schema"], key, tool["name"])
        content.append(
            {"type": "tool_use", "id": call_id, "name": tool["name"], "input": arguments}
        )
    text = ""
    if calls:
        stop_reason = "tool_use"
    elif body["model"] == REFUSING_MODEL:
        text, stop_reason = "I can't help with that.", "refusal"
    else:
        form = (body.get("output_config") or {}).get("format")
        text = (
            orjson.dumps(_instance(form["schema"], key)).decode()
            if form
            else f"mock answer to {key}"
        )
        for stop in body.get("stop_sequences") or []:
            if stop and stop in text:
                text, stop_reason, stop_sequence = text[: text.index(stop)], "stop_sequence", stop
                break
        words = text.split(" ")
        if len(words) > body["max_tokens"]:
            text, stop_reason = " ".join(words[: body["max_tokens"]]), "max_tokens"
    if text:
        content.append({"type": "text", "text": text})
    prompt = max(1, len(orjson.dumps(body["messages"])) // 4)
    read = prompt // 2 if _cached(body) else 0
    written = prompt // 4 if _cached(body) else 0
    thinking_tokens = max(1, len(thought) // 4) if thinking else 0
    output = max(1, len(orjson.dumps(content)) // 8) + thinking_tokens
    usage: dict[str, Any] = {
        "input_tokens": prompt - read - written,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "output_tokens": output,
        "service_tier": service_tier,
    }
    if thinking:
        usage["output_tokens_details"] = {"thinking_tokens": thinking_tokens}
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "stop_details": {"type": "refusal", "category": None, "explanation": None}
        if stop_reason == "refusal"
        else None,
        "usage": usage,
    }


def _pieces(text: str, count: int) -> list[str]:
    size = max(1, math.ceil(len(text) / count))
    return [text[start : start + size] for start in range(0, len(text), size)]


def stream_events(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, data) sequence Anthropic streams ``message`` as."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["stop_details"] = None
    start["usage"] = {**usage, "output_tokens": 1}
    start["usage"].pop("output_tokens_details", None)
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        opening: dict[str, Any]
        deltas: list[dict[str, Any]]
        if kind == "text":
            opening = {"type": "text", "text": ""}
            words = block["text"].split(" ")
            pieces = [word if i == 0 else " " + word for i, word in enumerate(words)]
            deltas = [{"type": "text_delta", "text": piece} for piece in pieces]
        elif kind == "tool_use":
            opening = {**block, "input": {}}
            text = orjson.dumps(block["input"]).decode()
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [{"type": "input_json_delta", "partial_json": p} for p in _pieces(text, 3)]
        else:  # thinking
            opening = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": p} for p in _pieces(block["thinking"], 2)
            ]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opening},
            )
        )
        if index == 0:
            events.append(("ping", {"type": "ping"}))
        events += [
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            for delta in deltas
        ]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    final_usage = {key: value for key, value in usage.items() if key != "service_tier"}
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": message["stop_reason"],
                    "stop_sequence": message["stop_sequence"],
                    "stop_details": message["stop_details"],
                },
                "usage": final_usage,
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def encode_event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
