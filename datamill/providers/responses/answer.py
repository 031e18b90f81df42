"""A chat completion as a response object: its message and tool calls as ``output`` items,
its usage in Responses names, its finish reason as ``status``."""

from __future__ import annotations

from typing import Any

from datamill.ids import new_response_id, new_response_item_id
from datamill.protocol.responses import (
    FunctionCall,
    IncompleteDetails,
    InputTokensDetails,
    OutputItem,
    OutputMessage,
    OutputRefusal,
    OutputText,
    OutputTokensDetails,
    ResponseObject,
    ResponseStatus,
    ResponseUsage,
)

# Chat finish reasons that stop a response early, and the reason a response gives.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def start_response(request: dict[str, Any], *, model: str, created_at: float) -> ResponseObject:
    """An ``in_progress`` response to ``request`` (a Responses body), echoing its settings."""
    echoed = {
        key: request[key]
        for key in (
            "instructions",
            "max_output_tokens",
            "parallel_tool_calls",
            "reasoning",
            "store",
            "temperature",
            "text",
            "tool_choice",
            "tools",
            "top_p",
            "user",
            "metadata",
        )
        if request.get(key) is not None
    }
    if "tools" in echoed:
        echoed["tools"] = [_echoed_tool(tool) for tool in echoed["tools"]]
    return ResponseObject(
        id=new_response_id(),
        created_at=created_at,
        status=ResponseStatus.in_progress,
        model=model,
        **echoed,
    )


def _echoed_tool(tool: Any) -> Any:
    """A function tool as OpenAI echoes it: ``strict`` and ``parameters`` always there
    (``null`` when the request left them out: the provider's default applies)."""
    if isinstance(tool, dict) and tool.get("type") == "function":
        return {"strict": None, "parameters": None, **tool}
    return tool


def finish_response(
    response: ResponseObject,
    output: list[OutputItem],
    *,
    finish_reason: str | None,
    usage: dict[str, Any] | None,
) -> ResponseObject:
    """``response`` ended: its output, status and usage."""
    reason = _INCOMPLETE.get(finish_reason or "")
    return response.model_copy(
        update={
            "status": ResponseStatus.incomplete if reason else ResponseStatus.completed,
            "incomplete_details": IncompleteDetails(reason=reason) if reason else None,
            "output": output,
            "usage": response_usage(usage) if usage else None,
        }
    )


def response_usage(usage: dict[str, Any]) -> ResponseUsage:
    """A chat completion's usage in Responses names."""
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return ResponseUsage(
        input_tokens=prompt,
        input_tokens_details=InputTokensDetails(
            cached_tokens=int(prompt_details.get("cached_tokens") or 0),
            cache_write_tokens=int(prompt_details.get("cache_write_tokens") or 0),
        ),
        output_tokens=completion,
        output_tokens_details=OutputTokensDetails(
            reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0)
        ),
        total_tokens=int(usage.get("total_tokens") or prompt + completion),
    )


def to_response(completion: dict[str, Any], request: dict[str, Any]) -> ResponseObject:
    """The response object for ``completion``, a chat completion answering the translation
    of ``request``."""
    started = start_response(
        request,
        model=str(completion.get("model") or request["model"]),
        created_at=float(completion.get("created") or 0),
    )
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    finish = choice.get("finish_reason")
    status = ResponseStatus.incomplete if finish in _INCOMPLETE else ResponseStatus.completed
    output: list[OutputItem] = []
    content: list[OutputText | OutputRefusal] = []
    if message.get("content"):
        content.append(OutputText(text=str(message["content"])))
    if message.get("refusal"):
        content.append(OutputRefusal(refusal=str(message["refusal"])))
    if content:
        output.append(OutputMessage(id=new_response_item_id("msg"), status=status, content=content))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        output.append(
            FunctionCall(
                id=new_response_item_id("fc"),
                call_id=str(call.get("id") or new_response_item_id("call")),
                name=str(function.get("name") or ""),
                arguments=str(function.get("arguments") or ""),
                status=ResponseStatus.completed,
            )
        )
    return finish_response(started, output, finish_reason=finish, usage=completion.get("usage"))
