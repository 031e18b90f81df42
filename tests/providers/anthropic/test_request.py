"""OpenAI chat request -> Anthropic Messages request: each feature, and each refusal with the
field it names."""

from __future__ import annotations

from typing import Any

import pytest

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.anthropic.options import AnthropicOptions
from datamill.providers.anthropic.request import messages_request
from datamill.providers.anthropic.table import CHAT_FIELD_TABLE, JSON_TOOL
from datamill.providers.fields import CHAT_FIELDS, MESSAGE_FEATURES, Support

OPTIONS = AnthropicOptions()
USER = {"role": "user", "content": "hi"}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def translate(options: AnthropicOptions = OPTIONS, **fields: Any) -> dict[str, Any]:
    body = {"model": "claude-test", "messages": [USER], **fields}
    return messages_request(body, options)


def refused(options: AnthropicOptions = OPTIONS, **fields: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        translate(options, **fields)
    error = caught.value
    assert error.category is ErrorCategory.bad_request
    assert error.body["error"]["param"] == error.param
    return error


def test_a_plain_request():
    assert translate() == {
        "model": "claude-test",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "hi"}],
    }


# -- the field table --------------------------------------------------------------------------


def test_the_table_covers_every_openai_field_and_message_feature():
    assert set(CHAT_FIELD_TABLE) == set(CHAT_FIELDS + MESSAGE_FEATURES)


# A value asking for something, for every top-level field the table says `no` to.
NO_VALUES: dict[str, Any] = {
    "audio": {"voice": "alloy", "format": "wav"},
    "frequency_penalty": 0.5,
    "function_call": "auto",
    "functions": [{"name": "f", "parameters": {"type": "object"}}],
    "logit_bias": {"50256": -100},
    "logprobs": True,
    "metadata": {"run": "7"},
    "prediction": {"type": "content", "content": "x"},
    "presence_penalty": 0.5,
    "prompt_cache_key": "k",
    "seed": 7,
    "store": True,
    "top_logprobs": 2,
    "verbosity": "low",
    "web_search_options": {},
}


def test_every_field_the_table_says_no_to_is_refused():
    top_level_no = {
        name
        for name, support in CHAT_FIELD_TABLE.items()
        if support.support is Support.no and not name.startswith("messages[]")
    }
    assert top_level_no == set(NO_VALUES)
    for name, value in NO_VALUES.items():
        assert refused(**{name: value}).param == name


# For every top-level field the table says `yes` to: a value, and what it becomes.
YES_TRANSLATIONS: dict[str, tuple[Any, dict[str, Any]]] = {
    "max_completion_tokens": (50, {"max_tokens": 50}),
    "max_tokens": (60, {"max_tokens": 60}),
    "parallel_tool_calls": (
        False,
        {"tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
    ),
    "safety_identifier": ("user-hash", {"metadata": {"user_id": "user-hash"}}),
    "stop": (["END", "STOP"], {"stop_sequences": ["END", "STOP"]}),
    "top_p": (0.9, {"top_p": 0.9}),
    "user": ("u-1", {"metadata": {"user_id": "u-1"}}),
}


def test_every_field_the_table_says_yes_to_is_translated():
    top_level_yes = {
        name
        for name, support in CHAT_FIELD_TABLE.items()
        if support.support is Support.yes and not name.startswith("messages[]")
    }
    # model and messages are in every request; stream and stream_options are the stream's.
    assert top_level_yes - {"model", "messages", "stream", "stream_options"} == set(
        YES_TRANSLATIONS
    )
    for name, (value, expected) in YES_TRANSLATIONS.items():
        extra = {"tools": [WEATHER]} if name == "parallel_tool_calls" else {}
        request = translate(**{name: value}, **extra)
        for key, translated in expected.items():
            assert request[key] == translated, name
    # The stream's own fields ask nothing of the Messages request.
    assert translate(stream=False, stream_options={"include_usage": True}) == translate()


def test_neutral_values_of_unsupported_fields_are_accepted():
    assert translate(n=1, logprobs=False, store=False, frequency_penalty=0, metadata={}) == (
        translate()
    )


def test_an_unknown_field_is_refused():
    assert refused(temperature_scale=2).param == "temperature_scale"


# -- sampling and lengths ---------------------------------------------------------------------


def test_temperature_between_0_and_1_goes_through_and_above_is_refused():
    assert translate(temperature=0.7)["temperature"] == 0.7
    assert translate(temperature=0)["temperature"] == 0
    for value in (1.2, 2, -0.1, "1"):
        error = refused(temperature=value)
        assert error.param == "temperature"
        assert "never clamped" in error.message


def test_max_tokens_default_and_conflicts():
    options = AnthropicOptions(default_max_tokens=123)
    assert translate(options)["max_tokens"] == 123
    assert translate(max_tokens=9, max_completion_tokens=9)["max_tokens"] == 9
    assert refused(max_tokens=9, max_completion_tokens=10).param == "max_tokens"
    assert refused(max_completion_tokens=0).param == "max_completion_tokens"
    assert refused(max_tokens=True).param == "max_tokens"


def test_stop_as_a_string_a_list_or_empty():
    assert translate(stop="END")["stop_sequences"] == ["END"]
    assert "stop_sequences" not in translate(stop=[])
    assert refused(stop=[1]).param == "stop"


def test_n_above_one_and_other_modalities_are_refused():
    assert refused(n=2).param == "n"
    assert translate(modalities=["text"]) == translate()
    assert refused(modalities=["text", "audio"]).param == "modalities"


def test_user_and_safety_identifier_must_agree():
    both = translate(user="a", safety_identifier="a")
    assert both["metadata"] == {"user_id": "a"}
    assert refused(user="a", safety_identifier="b").param == "safety_identifier"


def test_service_tier():
    assert translate(service_tier="auto")["service_tier"] == "auto"
    assert translate(service_tier="default")["service_tier"] == "standard_only"
    assert refused(service_tier="flex").param == "service_tier"
    assert refused(service_tier="priority").param == "service_tier"


def test_prompt_caching_option_marks_the_request():
    request = translate(AnthropicOptions(prompt_caching=True))
    assert request["cache_control"] == {"type": "ephemeral"}


# -- reasoning ----------------------------------------------------------------------------


def test_reasoning_effort_is_adaptive_thinking_at_that_effort():
    for effort in ("low", "medium", "high", "xhigh"):
        request = translate(reasoning_effort=effort)
        assert request["thinking"] == {"type": "adaptive"}
        assert request["output_config"] == {"effort": effort}
    assert translate(reasoning_effort="none")["thinking"] == {"type": "disabled"}
    assert refused(reasoning_effort="minimal").param == "reasoning_effort"


# -- system messages and the conversation -------------------------------------------------


def test_leading_system_and_developer_messages_are_the_system_prompt():
    one = translate(messages=[{"role": "system", "content": "Be brief."}, USER])
    assert one["system"] == "Be brief."
    assert one["messages"] == [USER]

    two = translate(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            USER,
        ]
    )
    assert two["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Use French."},
    ]


def test_a_system_message_after_the_conversation_started_is_refused():
    error = refused(messages=[USER, {"role": "system", "content": "late"}])
    assert error.param == "messages[1]"
    assert "after the conversation started" in error.message


def test_a_conversation_of_system_messages_only_is_refused():
    assert refused(messages=[{"role": "system", "content": "x"}]).param == "messages"


def test_multi_turn_alternates_and_consecutive_turns_merge():
    request = translate(
        messages=[
            {"role": "user", "content": "one"},
            {"role": "user", "content": [{"type": "text", "text": "two"}]},
            {"role": "assistant", "content": "three"},
            {"role": "user", "content": "four"},
        ]
    )
    assert request["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "three"}]},
        {"role": "user", "content": "four"},
    ]


def test_message_names_and_unknown_roles_are_refused():
    named = {"role": "user", "content": "hi", "name": "alice"}
    assert refused(messages=[named]).param == "messages[0].name"
    assert refused(messages=[{"role": "robot", "content": "x"}]).param == "messages[0].role"
    function = {"role": "function", "name": None, "content": "x"}
    assert refused(messages=[USER, function]).param == "messages[1]"
    assert refused(messages=[]).param == "messages"


def test_an_empty_assistant_turn_is_refused():
    messages = [USER, {"role": "assistant", "content": ""}, USER]
    assert refused(messages=messages).param == "messages[1].content"


def test_assistant_refusals_and_audio_are_refused():
    refusal = {"role": "assistant", "content": None, "refusal": "no"}
    assert refused(messages=[USER, refusal]).param == "messages[1].refusal"


# -- content parts ----------------------------------------------------------------------------


def user_parts(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": "look"}, *parts]}]


def test_image_parts_become_image_blocks():
    request = translate(
        messages=user_parts(
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {
                "type": "image_url",
                "image_url": {"url": "https://example.com/cat.jpg", "detail": "auto"},
            },
        )
    )
    assert request["messages"][0]["content"][1:] == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_image_details_and_other_urls_are_refused():
    detailed = {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}}
    assert refused(messages=user_parts(detailed)).param == "messages[0].content[1].image_url.detail"
    ftp = {"type": "image_url", "image_url": {"url": "ftp://x/a.png"}}
    assert refused(messages=user_parts(ftp)).param == "messages[0].content[1].image_url.url"


def test_pdf_files_become_documents_and_file_ids_are_refused():
    pdf = {
        "type": "file",
        "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
    }
    [block] = translate(messages=user_parts(pdf))["messages"][0]["content"][1:]
    assert block == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        "title": "a.pdf",
    }
    by_id = {"type": "file", "file": {"file_id": "file-abc"}}
    assert refused(messages=user_parts(by_id)).param == "messages[0].content[1].file.file_id"
    text_file = {"type": "file", "file": {"file_data": "data:text/plain;base64,aGk="}}
    assert refused(messages=user_parts(text_file)).param == "messages[0].content[1].file.file_data"


def test_audio_parts_are_refused():
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    assert refused(messages=user_parts(audio)).param == "messages[0].content[1]"


# -- tools ----------------------------------------------------------------------------------


def test_tools_become_anthropic_tools():
    strict = {"type": "function", "function": {"name": "noop", "strict": True}}
    request = translate(tools=[WEATHER, strict])
    assert request["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather in a city.",
            "input_schema": WEATHER["function"]["parameters"],
        },
        {"name": "noop", "input_schema": {"type": "object", "properties": {}}, "strict": True},
    ]
    assert "tool_choice" not in request


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather"},
        ),
    ],
)
def test_tool_choice(choice, expected):
    assert translate(tools=[WEATHER], tool_choice=choice)["tool_choice"] == expected


def test_parallel_tool_calls_false_disables_parallel_use():
    request = translate(tools=[WEATHER], tool_choice="required", parallel_tool_calls=False)
    assert request["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert translate(tools=[WEATHER], tool_choice="none", parallel_tool_calls=False)[
        "tool_choice"
    ] == {"type": "none"}


def test_tool_refusals_name_the_field():
    custom = {"type": "custom", "custom": {"name": "grammar"}}
    assert refused(tools=[custom]).param == "tools[0].type"
    array = {"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}
    assert refused(tools=[array]).param == "tools[0].function.parameters"
    reserved = {"type": "function", "function": {"name": JSON_TOOL}}
    assert refused(tools=[reserved]).param == "tools[0].function.name"
    allowed = {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}
    assert refused(tools=[WEATHER], tool_choice=allowed).param == "tool_choice"
    assert refused(tool_choice="required").param == "tool_choice"


def test_assistant_tool_calls_and_tool_results_round_trip():
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    request = translate(
        tools=[WEATHER],
        messages=[
            USER,
            {"role": "assistant", "content": "Let me look.", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
            {"role": "user", "content": "Thanks!"},
        ],
    )
    assert request["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18 C"},
                {"type": "text", "text": "Thanks!"},
            ],
        },
    ]


def test_tool_call_arguments_that_are_not_a_json_object_are_refused():
    for arguments in ("{not json", "[1, 2]"):
        call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
        error = refused(messages=[USER, {"role": "assistant", "tool_calls": [call]}])
        assert error.param == "messages[1].tool_calls[0].function.arguments"


def test_tool_messages_need_a_call_id_and_text():
    assert refused(messages=[USER, {"role": "tool", "content": "x"}]).param == (
        "messages[1].tool_call_id"
    )
    image = {"type": "image_url", "image_url": {"url": "https://x/a.png"}}
    tool = {"role": "tool", "tool_call_id": "c", "content": [image]}
    assert refused(messages=[USER, tool]).param == "messages[1].content[0]"


# -- JSON answers ---------------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
JSON_SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "person", "description": "A person.", "schema": SCHEMA, "strict": True},
}


def test_json_schema_is_a_forced_tool():
    request = translate(response_format=JSON_SCHEMA)
    [tool] = request["tools"]
    assert tool["name"] == JSON_TOOL
    assert tool["input_schema"] == SCHEMA
    assert tool["strict"] is True
    assert "`person`: A person." in tool["description"]
    assert request["tool_choice"] == {
        "type": "tool",
        "name": JSON_TOOL,
        "disable_parallel_tool_use": True,
    }


def test_json_object_is_a_forced_tool_taking_any_object():
    request = translate(response_format={"type": "json_object"})
    assert request["tools"][0]["input_schema"] == {"type": "object"}
    assert request["tool_choice"]["name"] == JSON_TOOL
    assert translate(response_format={"type": "text"}) == translate()


def test_json_answers_with_the_requests_own_tools():
    auto = translate(response_format=JSON_SCHEMA, tools=[WEATHER])
    assert [tool["name"] for tool in auto["tools"]] == ["get_weather", JSON_TOOL]
    assert auto["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}

    none = translate(response_format=JSON_SCHEMA, tools=[WEATHER], tool_choice="none")
    assert none["tool_choice"]["name"] == JSON_TOOL

    # Tool calls are asked for: no format applies to them.
    required = translate(response_format=JSON_SCHEMA, tools=[WEATHER], tool_choice="required")
    assert [tool["name"] for tool in required["tools"]] == ["get_weather"]
    assert required["tool_choice"] == {"type": "any"}


def test_json_schema_refusals():
    array = {"type": "json_schema", "json_schema": {"name": "list", "schema": {"type": "array"}}}
    assert refused(response_format=array).param == "response_format.json_schema.schema"
    nameless = {"type": "json_schema", "json_schema": {"schema": SCHEMA}}
    assert refused(response_format=nameless).param == "response_format.json_schema"
    assert refused(response_format={"type": "grammar"}).param == "response_format"
    thinking = refused(response_format=JSON_SCHEMA, reasoning_effort="high")
    assert thinking.param == "response_format"
    assert "output_format" in thinking.message


def test_output_format_json_mode_uses_structured_outputs():
    options = AnthropicOptions(json_mode="output_format")
    request = translate(options, response_format=JSON_SCHEMA, reasoning_effort="low")
    assert request["output_config"] == {
        "effort": "low",
        "format": {"type": "json_schema", "schema": SCHEMA},
    }
    assert "tools" not in request
    error = refused(options, response_format={"type": "json_object"})
    assert error.param == "response_format"
