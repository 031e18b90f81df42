"""The mock provider's ``/v1/responses`` (OpenAI's Responses API), for pass-through tests.

Answers are written here directly in the Responses format (not through datamill's
translation, which the tests check against them): the text is ``mock answer to <key>``,
where the key is ``user`` or the last input text, as the mock's chat completions do. A
request with function tools gets a call of the first tool instead. Streams send OpenAI's
event sequence, one delta per word.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

_SSE_HEADERS = {"Content-Type": "text/event-stream"}


def responses_key(body: dict[str, Any]) -> str | None:
    if "user" in body:
        return str(body["user"])
    given = body.get("input")
    if isinstance(given, str):
        return given
    if isinstance(given, list) and given and isinstance(given[-1], dict):
        content = given[-1].get("content", given[-1].get("output"))
        if isinstance(content, list):
            texts = [part.get("text", "") for part in content if isinstance(part, dict)]
            return "".join(str(text) for text in texts)
        return content if isinstance(content, str) else orjson.dumps(content).decode()
    return None


def responses_problem(body: dict[str, Any]) -> web.Response | None:
    given = body.get("input")
    if not isinstance(given, str | list) or not given:
        return _error("Missing required parameter: 'input'.", "input")
    if not isinstance(body.get("model"), str):
        return _error("You must provide a model parameter.", "model")
    return None


def responses_answer(body: dict[str, Any], key: str, answer_id: str) -> tuple[bytes, int]:
    chars = len(orjson.dumps(body.get("input"))) + len(str(body.get("instructions") or ""))
    tools = [tool for tool in body.get("tools") or () if tool.get("type") == "function"]
    item: dict[str, Any]
    if tools:
        item = {
            "type": "function_call",
            "id": f"fc_{answer_id}",
            "call_id": f"call_{answer_id}",
            "name": tools[0]["name"],
            "arguments": orjson.dumps({"key": key}).decode(),
            "status": "completed",
        }
        produced = len(item["arguments"])
    else:
        text = f"mock answer to {key}"
        item = {
            "type": "message",
            "id": f"msg_{answer_id}",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
        }
        produced = len(text)
    input_tokens, output_tokens = max(1, chars // 4), max(1, produced // 4)
    payload = {
        "id": f"resp_{answer_id}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "model": body["model"],
        "output": [item],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "store": body.get("store", True),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": [_echoed_tool(tool) for tool in body.get("tools") or ()],
        "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0),
        "user": body.get("user"),
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
        "metadata": body.get("metadata") or {},
    }
    return orjson.dumps(payload), input_tokens + output_tokens


async def stream_responses(request: web.Request, answer: web.Response) -> web.StreamResponse:
    """``answer`` (a text response) as OpenAI streams it."""
    assert isinstance(answer.body, bytes)
    final = orjson.loads(answer.body)
    stream = web.StreamResponse(
        headers={**_SSE_HEADERS, "x-request-id": answer.headers["x-request-id"]}
    )
    await stream.prepare(request)
    sequence = 0

    async def send(kind: str, **fields: Any) -> None:
        nonlocal sequence
        event = {"type": kind, "sequence_number": sequence, **fields}
        sequence += 1
        await stream.write(f"event: {kind}\ndata: ".encode() + orjson.dumps(event) + b"\n\n")

    started = {**final, "status": "in_progress", "output": [], "usage": None}
    await send("response.created", response=started)
    await send("response.in_progress", response=started)
    item = final["output"][0]
    ids = {"item_id": item["id"], "output_index": 0}
    opened = {**item, "content": []} if item["type"] == "message" else {**item, "arguments": ""}
    await send("response.output_item.added", output_index=0, item=opened)
    if item["type"] == "message":
        part = item["content"][0]
        empty = {**part, "text": ""}
        await send("response.content_part.added", **ids, content_index=0, part=empty)
        for i, word in enumerate(part["text"].split(" ")):
            delta = word if i == 0 else " " + word
            await send(
                "response.output_text.delta", **ids, content_index=0, delta=delta, logprobs=[]
            )
        await send(
            "response.output_text.done", **ids, content_index=0, text=part["text"], logprobs=[]
        )
        await send("response.content_part.done", **ids, content_index=0, part=part)
    else:
        arguments = item["arguments"]
        await send("response.function_call_arguments.delta", **ids, delta=arguments)
        await send(
            "response.function_call_arguments.done", **ids, name=item["name"], arguments=arguments
        )
    await send("response.output_item.done", output_index=0, item=item)
    await send("response.completed", response=final)
    await stream.write_eof()
    return stream


def _echoed_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool as OpenAI echoes it: a function's ``strict`` defaults to true."""
    if tool.get("type") != "function":
        return tool
    return {"description": None, "strict": True, "parameters": None, **tool}


def _error(message: str, param: str) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param}}
    return web.Response(body=orjson.dumps(body), status=400, content_type="application/json")
