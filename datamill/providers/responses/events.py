"""Streamed chat chunks as OpenAI's Responses events.

`ResponseEvents` is fed chat completion chunks and returns the events they make, in OpenAI's
order: ``response.created`` and ``response.in_progress`` first; for each output item
``response.output_item.added``, its content part or arguments and their deltas, their
``done`` events and ``response.output_item.done``; ``response.completed`` (or
``response.incomplete`` when the model was cut short) last, with the whole response and
its usage. Every event has its ``sequence_number``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datamill.ids import new_response_item_id
from datamill.protocol.responses import (
    FunctionCall,
    OutputItem,
    OutputMessage,
    OutputText,
    ResponseObject,
    ResponseStatus,
)
from datamill.providers.responses.answer import finish_response, start_response

Event = dict[str, Any]


@dataclass(slots=True)
class _Call:
    item: FunctionCall
    index: int  # in output


@dataclass(slots=True)
class ResponseEvents:
    request: dict[str, Any]  # the Responses body
    created_at: float
    _response: ResponseObject | None = None
    _sequence: int = 0
    _output: list[OutputItem] = field(default_factory=list)
    _text: OutputMessage | None = None  # the message item being streamed, if any
    _calls: dict[int, _Call] = field(default_factory=dict)  # by the chunk's tool call index
    _finish: str | None = None
    _usage: dict[str, Any] | None = None

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        """The events of one chat chunk (the first ones open the response)."""
        events: list[Event] = []
        if self._response is None:
            model = str(chunk.get("model") or self.request["model"])
            self._response = start_response(self.request, model=model, created_at=self.created_at)
            snapshot = self._response.wire()
            events.append(self._event("response.created", response=snapshot))
            events.append(self._event("response.in_progress", response=snapshot))
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                events += self._text_delta(str(delta["content"]))
            for call in delta.get("tool_calls") or ():
                events += self._call_delta(call)
            if choice.get("finish_reason"):
                self._finish = str(choice["finish_reason"])
        return events

    def finish(self) -> list[Event]:
        """The closing events, once the chat stream ended."""
        events = [] if self._response is not None else self.feed({})
        events += self._close_text()
        for call in self._calls.values():
            item = call.item
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item.id,
                    output_index=call.index,
                    arguments=item.arguments,
                )
            )
            item.status = ResponseStatus.completed
            events.append(self._item_event("response.output_item.done", item, call.index))
        self._calls.clear()
        assert self._response is not None
        final = finish_response(
            self._response, self._output, finish_reason=self._finish, usage=self._usage
        )
        kind = (
            "response.incomplete"
            if final.status is ResponseStatus.incomplete
            else "response.completed"
        )
        events.append(self._event(kind, response=final.wire()))
        return events

    # -- items -----------------------------------------------------------------------------

    def _text_delta(self, text: str) -> list[Event]:
        events: list[Event] = []
        if self._text is None:
            self._text = OutputMessage(id=new_response_item_id("msg"), status="in_progress")
            self._output.append(self._text)
            events.append(self._item_event("response.output_item.added", self._text))
            events.append(self._part_event("response.content_part.added", OutputText(text="")))
            self._text.content.append(OutputText(text=""))
        part = self._text.content[0]
        assert isinstance(part, OutputText)
        part.text += text
        events.append(
            self._event(
                "response.output_text.delta",
                item_id=self._text.id,
                output_index=self._output.index(self._text),
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return events

    def _close_text(self) -> list[Event]:
        message = self._text
        if message is None:
            return []
        part = message.content[0]
        assert isinstance(part, OutputText)
        index = self._output.index(message)
        events = [
            self._event(
                "response.output_text.done",
                item_id=message.id,
                output_index=index,
                content_index=0,
                text=part.text,
                logprobs=[],
            ),
            self._part_event("response.content_part.done", part),
        ]
        message.status = ResponseStatus.completed
        events.append(self._item_event("response.output_item.done", message, index))
        self._text = None
        return events

    def _call_delta(self, call: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        key = int(call.get("index", 0))
        function = call.get("function") or {}
        known = self._calls.get(key)
        if known is None:
            events += self._close_text()  # a message's text ends where the calls begin
            item = FunctionCall(
                id=new_response_item_id("fc"),
                call_id=str(call.get("id") or new_response_item_id("call")),
                name=str(function.get("name") or ""),
                arguments="",
                status=ResponseStatus.in_progress,
            )
            known = self._calls[key] = _Call(item, len(self._output))
            self._output.append(item)
            events.append(self._item_event("response.output_item.added", item, known.index))
        arguments = function.get("arguments")
        if arguments:
            known.item.arguments += str(arguments)
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=known.item.id,
                    output_index=known.index,
                    delta=str(arguments),
                )
            )
        return events

    # -- event shapes ----------------------------------------------------------------------

    def _event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _item_event(self, kind: str, item: OutputItem, index: int | None = None) -> Event:
        position = self._output.index(item) if index is None else index
        return self._event(kind, output_index=position, item=item.model_dump(mode="json"))

    def _part_event(self, kind: str, part: OutputText) -> Event:
        assert self._text is not None
        return self._event(
            kind,
            item_id=self._text.id,
            output_index=self._output.index(self._text),
            content_index=0,
            part=part.model_dump(mode="json"),
        )
