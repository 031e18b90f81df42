"""Completions to chunks and back, as OpenAI streams them and the SDK reassembles them."""

from __future__ import annotations

from datamill.providers.chunks import chunks_from_completion, completion_from_chunks

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Two  words\nand more. ", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        },
        {
            "index": 1,
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a": 1}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "g", "arguments": "{}"},
                    },
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        },
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
}


def test_a_completion_survives_the_round_trip():
    chunks = chunks_from_completion(COMPLETION)

    assert completion_from_chunks(chunks) == COMPLETION


def test_the_chunk_sequence_is_openais():
    chunks = chunks_from_completion(COMPLETION)

    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    first = chunks[0]["choices"][0]
    assert first["delta"] == {"role": "assistant", "content": ""}
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks[1:5]]
    assert pieces == ["Two  ", "words\n", "and ", "more. "]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 8
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert [f for f in finishes if f] == ["stop", "tool_calls"]


def test_tool_call_arguments_streamed_in_pieces_are_joined():
    def piece(**call):
        return {"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}

    chunks = [
        piece(index=0, id="call_9", type="function", function={"name": "get", "arguments": ""}),
        piece(index=0, function={"arguments": '{"ci'}),
        piece(index=0, function={"arguments": 'ty": "Paris"}'}),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]

    [choice] = completion_from_chunks(chunks)["choices"]

    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_9",
            "type": "function",
            "function": {"name": "get", "arguments": '{"city": "Paris"}'},
        }
    ]
    assert choice["finish_reason"] == "tool_calls"
