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
    OutputRefusal,
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
    _open_part: int = 0  # the message's parts before this one are done
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
                events += self._part_delta("output_text", str(delta["content"]))
            if delta.get("refusal"):
                events += self._part_delta("refusal", str(delta["refusal"]))
            for call in delta.get("tool_calls") or ():
                events += self._call_delta(call)
            if choice.get("finish_reason"):
                self._finish = str(choice["finish_reason"])
        return events

    def finish(self) -> list[Event]:
        """The closing events, once the chat stream ended."""
        events = [] if self._response is not None else self.feed({})
        cut = self._finish in ("length", "content_filter")
        events += self._close_text(ResponseStatus.incomplete if cut else ResponseStatus.completed)
        for call in self._calls.values():
            item = call.item
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item.id,
                    name=item.name,
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

    def _part_delta(self, kind: str, text: str) -> list[Event]:
        """``text`` added to the message's open part of ``kind`` (output_text or refusal),
        opening the message, or a new part, as needed."""
        events: list[Event] = []
        if self._text is None:
            self._text = OutputMessage(id=new_response_item_id("msg"), status="in_progress")
            self._output.append(self._text)
            events.append(self._item_event("response.output_item.added", self._text))
        parts = self._text.content
        if not parts or parts[-1].type != kind:
            events += self._close_part()
            part: OutputText | OutputRefusal = (
                OutputText(text="") if kind == "output_text" else OutputRefusal(refusal="")
            )
            events.append(self._part_event("response.content_part.added", part))
            parts.append(part)
        fields: dict[str, Any] = {"delta": text}
        current = parts[-1]
        if isinstance(current, OutputText):
            current.text += text
            fields["logprobs"] = []
        else:
            current.refusal += text
        delta = "response.output_text.delta" if kind == "output_text" else "response.refusal.delta"
        events.append(self._event(delta, **self._where(), **fields))
        return events

    def _close_part(self) -> list[Event]:
        """The done events of the message's open part, if it has one."""
        assert self._text is not None
        if self._open_part == len(self._text.content):
            return []
        part = self._text.content[-1]
        self._open_part = len(self._text.content)
        if isinstance(part, OutputText):
            done = self._event(
                "response.output_text.done", **self._where(), text=part.text, logprobs=[]
            )
        else:
            done = self._event("response.refusal.done", **self._where(), refusal=part.refusal)
        return [done, self._part_event("response.content_part.done", part)]

    def _close_text(self, status: ResponseStatus = ResponseStatus.completed) -> list[Event]:
        message = self._text
        if message is None:
            return []
        events = self._close_part()
        message.status = status
        events.append(self._item_event("response.output_item.done", message))
        self._text = None
        self._open_part = 0
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

    def _where(self) -> dict[str, Any]:
        """Where the message's last part is: item, output index, content index."""
        assert self._text is not None
        return {
            "item_id": self._text.id,
            "output_index": self._output.index(self._text),
            "content_index": max(0, len(self._text.content) - 1),
        }

    def _part_event(self, kind: str, part: OutputText | OutputRefusal) -> Event:
        assert self._text is not None
        where = self._where()
        if kind == "response.content_part.added":
            where["content_index"] = len(self._text.content)  # the part is not in it yet
        return self._event(kind, **where, part=part.model_dump(mode="json"))
