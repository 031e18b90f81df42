"""OpenAI's Responses API wire format: the response object and its output items, the usage,
and the streamed events (API reference, "Responses": the ``Response`` object, "Streaming
events"; the ``openai`` package's ``types/responses``).

Only what datamill itself makes is modelled: a response translated from a chat completion.
Responses passed through from an upstream that has the API are kept verbatim.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ResponseStatus(StrEnum):
    """Where a response is (``status``)."""

    in_progress = "in_progress"  # streaming: not finished yet
    completed = "completed"  # the model finished
    incomplete = "incomplete"  # stopped early: ``incomplete_details`` says why
    failed = "failed"  # the call failed midway


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class OutputText(_Wire):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = Field(default_factory=list)
    logprobs: list[Any] = Field(default_factory=list)


class OutputRefusal(_Wire):
    type: Literal["refusal"] = "refusal"
    refusal: str


class OutputMessage(_Wire):
    """An assistant message item of ``output``."""

    type: Literal["message"] = "message"
    id: str
    status: ResponseStatus
    role: Literal["assistant"] = "assistant"
    content: list[OutputText | OutputRefusal] = Field(default_factory=list)


class FunctionCall(_Wire):
    """A function call item of ``output`` (the model asks the client to run a tool)."""

    type: Literal["function_call"] = "function_call"
    id: str
    call_id: str
    name: str
    arguments: str
    status: ResponseStatus


OutputItem = OutputMessage | FunctionCall


class InputTokensDetails(_Wire):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(_Wire):
    reasoning_tokens: int = 0


class ResponseUsage(_Wire):
    input_tokens: int
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens: int
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int


class IncompleteDetails(_Wire):
    reason: Literal["max_output_tokens", "content_filter"]


class ResponseObject(_Wire):
    """A response (``object: "response"``). The request's settings are echoed back, as
    OpenAI does; ``output_text`` is the SDKs' convenience, not a wire field."""

    id: str
    object: Literal["response"] = "response"
    created_at: float
    status: ResponseStatus
    error: dict[str, Any] | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | list[Any] | None = None
    max_output_tokens: int | None = None
    model: str
    output: list[OutputItem] = Field(default_factory=list)
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    reasoning: dict[str, Any] | None = None
    store: bool = True
    temperature: float | None = None
    text: dict[str, Any] = Field(default_factory=lambda: {"format": {"type": "text"}})
    tool_choice: str | dict[str, Any] = "auto"
    tools: list[Any] = Field(default_factory=list)
    top_p: float | None = None
    truncation: str = "disabled"
    usage: ResponseUsage | None = None
    user: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)

    def wire(self) -> dict[str, Any]:
        """The JSON-ready dict, every field present (``null`` where unset), as OpenAI sends."""
        return self.model_dump(mode="json")


# The events of a streamed response, in the order they come (response.output_item.added to
# response.output_item.done repeat for each item; the deltas for each text part or call).
RESPONSE_EVENTS = (
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.refusal.delta",
    "response.refusal.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",  # or response.incomplete, or response.failed
)
# The events that carry the final response object: the last event of a stream.
FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def input_items(given: Any) -> list[Any]:
    """A request's ``input`` as items: a string is one user message (anything else but a
    list is one item, for the provider to judge)."""
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    return list(given) if isinstance(given, list) else [given]


def continue_response(
    body: dict[str, Any], *, earlier_input: list[Any], earlier_response: dict[str, Any]
) -> dict[str, Any]:
    """``body`` (a Responses request naming ``previous_response_id``) as one that stands
    alone: the earlier response's turns (its input items, its own earlier turns included,
    and its output, which OpenAI takes back as input as it is) before ``body``'s input. Its
    ``instructions`` do not carry over, as at OpenAI."""
    output = earlier_response.get("output")
    answered = [i for i in output if isinstance(i, dict)] if isinstance(output, list) else []
    continued = {k: v for k, v in body.items() if k != "previous_response_id"}
    continued["input"] = earlier_input + answered + input_items(body.get("input"))
    return continued
