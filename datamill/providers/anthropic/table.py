"""What the `anthropic` provider can express of OpenAI's chat completion request, field by
field, and the refusal of what it cannot (a `bad_request` naming the field, never a drop)."""

from __future__ import annotations

from types import MappingProxyType

from datamill.errors import ProviderError
from datamill.providers.fields import (
    NO,
    YES,
    FieldTable,
    partial,
    unsupported,
)

PROVIDER = "anthropic"

# The tool that carries a JSON answer. Reserved: a request's own tool may not use the name, so
# an answer calling it is a JSON answer whatever the request was (batch results come back
# without their requests).
JSON_TOOL = "datamill_json_answer"

# Every name of fields.CHAT_FIELDS and fields.MESSAGE_FEATURES (tests check it).
CHAT_FIELD_TABLE: FieldTable = MappingProxyType(
    {
        "model": YES,
        "messages": YES,
        "audio": NO,
        "frequency_penalty": NO,
        "function_call": NO,
        "functions": NO,
        "logit_bias": NO,
        "logprobs": NO,
        "max_completion_tokens": YES,
        "max_tokens": YES,
        "metadata": NO,
        "modalities": partial('["text"] only'),
        "n": partial("1 only"),
        "parallel_tool_calls": YES,
        "prediction": NO,
        "presence_penalty": NO,
        "prompt_cache_key": NO,
        "reasoning_effort": partial(
            "low, medium, high, xhigh (adaptive thinking) and none; minimal rejected"
        ),
        "response_format": partial(
            "json_schema needs an object schema; json_object with json_mode tool"
        ),
        "safety_identifier": YES,
        "seed": NO,
        "service_tier": partial("auto and default; flex, scale and priority rejected"),
        "stop": YES,
        "store": NO,
        "stream": YES,
        "stream_options": YES,
        "temperature": partial("0 to 1; above 1 rejected"),
        "tool_choice": partial("auto, none, required and a named function; allowed_tools rejected"),
        "tools": partial("function tools; custom tools rejected"),
        "top_logprobs": NO,
        "top_p": YES,
        "user": YES,
        "verbosity": NO,
        "web_search_options": NO,
        "messages[].system": partial("leading system and developer messages only"),
        "messages[].name": NO,
        "messages[].image_url": partial("detail auto only"),
        "messages[].input_audio": NO,
        "messages[].file": partial("PDF file_data only; file_id rejected"),
        "messages[].tool_calls": YES,
        "messages[].tool": YES,
    }
)


def refuse(param: str, why: str) -> ProviderError:
    """A `bad_request` naming ``param``, the field (or value of it) Anthropic cannot take."""
    return unsupported(param, PROVIDER, why)
