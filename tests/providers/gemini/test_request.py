"""OpenAI chat requests to Gemini generateContent requests: each feature, each refusal, and the
field table held to what the translation does."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.fields import CHAT_FIELDS, MESSAGE_FEATURES, Support
from datamill.providers.gemini.options import GeminiOptions
from datamill.providers.gemini.request import CHAT_TABLE, translate_chat

OPTIONS = GeminiOptions()
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def translate(messages: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    messages = messages or [{"role": "user", "content": "hi"}]
    return translate_chat({"model": "m", "messages": messages, **fields}, OPTIONS)


def refused(messages: list[dict[str, Any]] | None = None, **fields: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        translate(messages, **fields)
    assert caught.value.category is ErrorCategory.bad_request
    assert caught.value.body["error"]["param"] == caught.value.param
    return caught.value


# -- messages ---------------------------------------------------------------------------------


def test_system_and_developer_messages_become_the_system_instruction():
    request = translate(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "hi"},
        ]
    )
    assert request["systemInstruction"] == {
        "parts": [{"text": "Be brief."}, {"text": "Answer in French."}]
    }
    assert request["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]


def test_a_system_message_after_the_conversation_started_is_refused():
    error = refused(
        [{"role": "user", "content": "hi"}, {"role": "system", "content": "now be rude"}]
    )
    assert error.param == "messages[1].role"


def test_turns_alternate_and_same_role_turns_merge():
    request = translate(
        [
            {"role": "user", "content": "one"},
            {"role": "user", "content": [{"type": "text", "text": "two"}]},
            {"role": "assistant", "content": "three"},
            {"role": "user", "content": "four"},
        ]
    )
    assert request["contents"] == [
        {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
        {"role": "model", "parts": [{"text": "three"}]},
        {"role": "user", "parts": [{"text": "four"}]},
    ]


def test_image_parts_data_urls_and_http_urls():
    request = translate(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "compare"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/cat.jpg?x=1", "detail": "low"},
                    },
                ],
            }
        ]
    )
    assert request["contents"][0]["parts"] == [
        {"text": "compare"},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
        {
            "fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg?x=1"},
            "mediaResolution": {"level": "MEDIA_RESOLUTION_LOW"},
        },
    ]


@pytest.mark.parametrize(
    ("url", "param"),
    [
        ("https://example.com/image", "messages[0].content[0].image_url.url"),
        ("ftp://example.com/cat.png", "messages[0].content[0].image_url.url"),
        ("data:image/png,notbase64", "messages[0].content[0].image_url.url"),
        ("data:image/png;base64,%%%", "messages[0].content[0].image_url.url"),
    ],
)
def test_image_urls_gemini_cannot_take_are_refused(url, param):
    error = refused(
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]
    )
    assert error.param == param


def test_http_image_urls_can_be_refused_by_option():
    options = GeminiOptions(external_image_urls=False)
    body = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}],
            }
        ],
    }
    with pytest.raises(ProviderError) as caught:
        translate_chat(body, options)
    assert caught.value.param == "messages[0].content[0].image_url.url"


def test_audio_and_file_parts_become_inline_data():
    request = translate(
        [
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": PNG, "format": "mp3"}},
                    {
                        "type": "file",
                        "file": {
                            "file_data": f"data:application/pdf;base64,{PNG}",
                            "filename": "a.pdf",
                        },
                    },
                ],
            }
        ]
    )
    assert request["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "audio/mp3", "data": PNG}},
        {"inlineData": {"mimeType": "application/pdf", "data": PNG}},
    ]
    error = refused(
        [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]
    )
    assert error.param == "messages[0].content[0].file.file_id"


def test_tool_calls_and_results_round_trip_with_names_and_signatures():
    request = translate(
        [
            {"role": "user", "content": "weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        "extra_content": {"google": {"thought_signature": "c2lnbmF0dXJl"}},
                    },
                    {
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
            {
                "role": "tool",
                "tool_call_id": "call_b",
                "content": [{"type": "text", "text": "rain"}],
            },
        ],
        tools=[WEATHER],
    )
    assert request["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": "c2lnbmF0dXJl",
                },
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}},
                {"functionResponse": {"name": "get_weather", "response": {"output": "rain"}}},
            ],
        },
    ]


def test_a_tool_result_for_an_unknown_call_is_refused():
    error = refused(
        [
            {"role": "user", "content": "hi"},
            {"role": "tool", "tool_call_id": "call_nowhere", "content": "42"},
        ]
    )
    assert error.param == "messages[1].tool_call_id"
    assert "call_nowhere" in error.message


def test_tool_call_arguments_must_be_a_json_object():
    for arguments in ("{not json", "[1, 2]"):
        error = refused(
            [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": arguments},
                        }
                    ],
                },
            ]
        )
        assert error.param == "messages[1].tool_calls[0].function.arguments"


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "user", "content": "hi", "name": "ann"}], "messages[0].name"),
        ([{"role": "function", "name": "f", "content": "x"}], "messages[0].name"),
        ([{"role": "critic", "content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": ""}], "messages[0].content"),
        ([{"role": "system", "content": "only a system prompt"}], "messages"),
        ([{"role": "user", "content": [{"type": "video", "video": {}}]}], "messages[0].content[0]"),
        (
            [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "x", "refusal": "no"},
            ],
            "messages[1].refusal",
        ),
    ],
)
def test_messages_gemini_cannot_express_are_refused(messages, param):
    assert refused(messages).param == param


# -- tools ------------------------------------------------------------------------------------


def test_function_tools_become_declarations_with_their_json_schema():
    request = translate(tools=[WEATHER])
    assert request["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather of a city",
                    "parametersJsonSchema": WEATHER["function"]["parameters"],
                }
            ]
        }
    ]
    assert "toolConfig" not in request  # auto is Gemini's default


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [{"type": "function", "function": {"name": "get_weather"}}],
                },
            },
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
def test_tool_choice_becomes_a_function_calling_mode(choice, config):
    request = translate(tools=[WEATHER], tool_choice=choice)
    assert request["toolConfig"] == {"functionCallingConfig": config}


def test_strict_functions_ask_for_validated_mode():
    strict = {**WEATHER, "function": {**WEATHER["function"], "strict": True}}
    assert translate(tools=[strict])["toolConfig"] == {
        "functionCallingConfig": {"mode": "VALIDATED"}
    }


def test_tools_gemini_cannot_express_are_refused():
    assert refused(tools=[{"type": "custom", "custom": {"name": "x"}}]).param == "tools[0]"
    assert refused(tool_choice="required").param == "tool_choice"
    assert refused(tools=[WEATHER], tool_choice={"type": "custom"}).param == "tool_choice"


# -- generation config ------------------------------------------------------------------------


def test_sampling_fields_become_the_generation_config():
    request = translate(
        temperature=0.2,
        top_p=0.8,
        max_completion_tokens=64,
        stop="END",
        n=2,
        presence_penalty=0.1,
        frequency_penalty=0.3,
        seed=11,
        logprobs=True,
        top_logprobs=4,
        reasoning_effort="high",
    )
    assert request["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.8,
        "maxOutputTokens": 64,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "presencePenalty": 0.1,
        "frequencyPenalty": 0.3,
        "seed": 11,
        "responseLogprobs": True,
        "logprobs": 4,
        "thinkingConfig": {"thinkingLevel": "HIGH"},
    }
    assert translate(max_tokens=9)["generationConfig"] == {"maxOutputTokens": 9}
    assert translate(reasoning_effort="none")["generationConfig"] == {
        "thinkingConfig": {"thinkingBudget": 0}
    }


def test_response_formats():
    assert translate(response_format={"type": "text"}).get("generationConfig") is None
    assert translate(response_format={"type": "json_object"})["generationConfig"] == {
        "responseMimeType": "application/json"
    }
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    config = translate(
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "count",
                "description": "How many",
                "schema": schema,
                "strict": True,
            },
        }
    )["generationConfig"]
    assert config == {
        "responseMimeType": "application/json",
        "responseJsonSchema": {**schema, "description": "How many"},
    }


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"max_tokens": 10, "max_completion_tokens": 20}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"response_format": {"type": "grammar"}}, "response_format.type"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format.json_schema.schema",
        ),
        ({"stop": [1]}, "stop"),
        ({"temperature": "hot"}, "temperature"),
        ({"frobnicate": True}, "frobnicate"),
    ],
)
def test_values_gemini_cannot_take_are_refused(fields, param):
    assert refused(**fields).param == param


def test_safety_settings_come_from_the_deployment():
    options = GeminiOptions.model_validate(
        {"safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]}
    )
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert translate_chat(body, options)["safetySettings"] == [
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}
    ]


# -- the field table against the translation --------------------------------------------------

# A value that asks for something, per field; the body around it is `translate`'s default.
ASKING: dict[str, Any] = {
    "audio": {"voice": "alloy", "format": "mp3"},
    "frequency_penalty": 0.5,
    "function_call": "auto",
    "functions": [{"name": "f", "parameters": {"type": "object"}}],
    "logit_bias": {"50256": -100},
    "logprobs": True,
    "max_completion_tokens": 32,
    "max_tokens": 32,
    "metadata": {"team": "a"},
    "modalities": ["text", "audio"],
    "n": 3,
    "parallel_tool_calls": False,
    "prediction": {"type": "content", "content": "x"},
    "presence_penalty": 0.5,
    "prompt_cache_key": "k",
    "reasoning_effort": "low",
    "response_format": {"type": "json_object"},
    "safety_identifier": "u-1",
    "seed": 3,
    "service_tier": "flex",
    "stop": ["x"],
    "store": True,
    "temperature": 0.3,
    "tool_choice": "none",
    "tools": [WEATHER],
    "top_logprobs": 2,
    "top_p": 0.5,
    "user": "u-1",
    "verbosity": "low",
    "web_search_options": {},
}
# Fields that need a companion to ask anything.
COMPANIONS: dict[str, dict[str, Any]] = {
    "tool_choice": {"tools": [WEATHER]},
    "top_logprobs": {"logprobs": True},
}
# Fields used outside the generateContent body: the URL's model, the streaming endpoint.
ELSEWHERE = {"model", "messages", "stream", "stream_options"}
# Fields accepted and not sent, as their note says.
NOT_SENT = {"prompt_cache_key", "safety_identifier", "user"}
# Message features: a message list that uses it, and whether Gemini can take it.
FEATURES: dict[str, list[dict[str, Any]]] = {
    "messages[].system": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
    "messages[].name": [{"role": "user", "content": "u", "name": "ann"}],
    "messages[].image_url": [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
            ],
        }
    ],
    "messages[].input_audio": [
        {
            "role": "user",
            "content": [{"type": "input_audio", "input_audio": {"data": PNG, "format": "wav"}}],
        }
    ],
    "messages[].file": [
        {
            "role": "user",
            "content": [
                {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PNG}"}}
            ],
        }
    ],
    "messages[].tool_calls": [
        {"role": "user", "content": "u"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
    ],
    "messages[].tool": [
        {"role": "user", "content": "u"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c", "content": "r"},
    ],
}


def test_the_table_covers_every_field_and_the_tests_cover_the_table():
    assert set(CHAT_TABLE) == set(CHAT_FIELDS + MESSAGE_FEATURES)
    assert set(CHAT_FIELDS) == set(ASKING) | ELSEWHERE
    assert set(MESSAGE_FEATURES) == set(FEATURES)


@pytest.mark.parametrize("field", sorted(set(ASKING)))
def test_every_field_does_what_the_table_says(field):
    support = CHAT_TABLE[field].support
    body = {**COMPANIONS.get(field, {}), field: ASKING[field]}
    if support is Support.no:
        assert refused(**body).param == field
        return
    if field == "modalities":  # partial: the asking value is refused, the neutral one taken
        assert refused(**body).param == field
        assert translate(modalities=["text"]) == translate()
        return
    translated = translate(**body)
    without = translate(**COMPANIONS.get(field, {}))
    if field in NOT_SENT:
        assert translated == without
    else:
        assert translated != without, f"{field} changed nothing on the wire"


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_every_message_feature_does_what_the_table_says(feature):
    support = CHAT_TABLE[feature].support
    if support is Support.no:
        assert refused(FEATURES[feature]).param.startswith("messages[")
    else:
        request = translate(FEATURES[feature])
        assert request["contents"]
