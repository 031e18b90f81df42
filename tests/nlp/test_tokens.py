"""Token estimates against real o200k_base counts, and their shape."""

from __future__ import annotations

import pytest

from datamill.nlp.tokens import (
    DEFAULT_OUTPUT_BUDGET,
    IMAGE_TOKENS,
    estimate_message_tokens,
    estimate_request_tokens,
    estimate_response_tokens,
    estimate_tokens,
)

# Real o200k_base counts, from an exact implementation of the encoding (offline, at authoring).
KNOWN_COUNTS = [
    ("The quick brown fox jumps over the lazy dog.", 10),
    ("Hello, world!", 4),
    (
        "Summarize the following customer review in one sentence and classify its sentiment "
        "as positive, negative or neutral.",
        21,
    ),
    (
        "You are a helpful assistant. Answer the question using only the provided context, "
        "and say so when the context does not contain the answer.",
        27,
    ),
    (
        "Large language models are trained on vast amounts of text. They predict the next token "
        "in a sequence, and with enough data and parameters they learn grammar, facts and some "
        "reasoning. Batch processing lets teams run millions of prompts cheaply when they do not "
        "need answers right away.",
        53,
    ),
    (
        "def fibonacci(n: int) -> int:\n    if n < 2:\n        return n\n"
        "    return fibonacci(n - 1) + fibonacci(n - 2)\n",
        35,
    ),
    (
        "class Settings(BaseModel):\n"
        '    model_config = ConfigDict(extra="forbid", frozen=True)\n\n'
        '    home: Path = Field(default=Path(".datamill"))\n'
        "    port: int = Field(default=8000, ge=0, le=65535)\n",
        53,
    ),
    ("const total = items.reduce((sum, item) => sum + item.price * item.quantity, 0);", 22),
    ('{"name": "Ada Lovelace", "born": 1815, "languages": ["English", "French"]}', 26),
    (
        "SELECT id, status, created_at FROM batches WHERE status = 'in_progress' "
        "ORDER BY created_at DESC LIMIT 50;",
        25,
    ),
    ("2024-05-13T10:30:00Z 3.14159 1234567890", 23),
    ("素早い茶色の狐がのろまな犬を飛び越えた。", 20),
]


@pytest.mark.parametrize(("text", "real"), KNOWN_COUNTS)
def test_estimate_is_within_a_quarter_of_o200k(text: str, real: int) -> None:
    estimate = estimate_tokens(text)
    assert abs(estimate - real) <= 0.25 * real, (estimate, real)


def test_empty_text_is_zero_and_any_text_at_least_one() -> None:
    assert estimate_tokens("") == 0
    for text in (" ", "a", "\n", "!", "é", "🎉", "7"):
        assert estimate_tokens(text) >= 1


def test_estimate_scales_with_repetition() -> None:
    sentence = "The delivery was late but the product works great."
    one = estimate_tokens(sentence)
    ten = estimate_tokens(" ".join([sentence] * 10))
    assert 9 * one <= ten <= 11 * one


def test_estimate_grows_monotonically_with_appended_words() -> None:
    words = ["batch", "processing", "lets", "teams", "run", "millions", "of", "prompts"]
    counts = [estimate_tokens(" ".join(words[:i])) for i in range(1, len(words) + 1)]
    assert counts == sorted(counts)
    assert counts[-1] > counts[0]


def test_long_words_cost_more_than_short_ones() -> None:
    assert estimate_tokens("cat") == 1
    assert estimate_tokens("internationalization") >= 2
    # A long run of letters is about one token per four characters, not one token.
    assert 15 <= estimate_tokens("q" * 80) <= 30


def test_code_identifiers_split_on_case_and_underscores() -> None:
    assert estimate_tokens("getElementById") >= 3
    assert estimate_tokens("snake_case_name") >= 3
    assert estimate_tokens("x") == 1


def test_rulers_and_whitespace_runs_are_cheap() -> None:
    assert estimate_tokens("-" * 64) <= 3
    assert estimate_tokens(" " * 40) <= 2
    assert estimate_tokens("\n\n\n") == 1


def test_unicode_scripts_are_counted_per_character_where_o200k_does() -> None:
    chinese = "快速的棕色狐狸跳过了懒狗"  # 12 characters, 12 o200k tokens
    assert 8 <= estimate_tokens(chinese) <= 15
    assert 1 <= estimate_tokens("café") <= 3
    assert estimate_tokens("🎉🚀👋") >= 4  # emoji are about two tokens each
    assert estimate_tokens("Привет, как дела?") <= 9  # 6 o200k tokens


def test_message_tokens_count_overhead_text_parts_and_images() -> None:
    text = "Describe the picture in one sentence."
    plain = estimate_message_tokens([{"role": "user", "content": text}])
    assert plain == estimate_tokens(text) + 6  # 3 per message, 3 to prime the reply
    parts = estimate_message_tokens(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": text},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                ],
            }
        ]
    )
    assert parts == plain + IMAGE_TOKENS
    two = estimate_message_tokens(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]
    )
    assert two == plain + 3 + estimate_tokens("Be brief.")
    assert estimate_message_tokens([{"role": "user", "content": None}]) == 6


def test_request_tokens_for_chat_bodies() -> None:
    messages = [{"role": "user", "content": "Say hello."}]
    prompt = estimate_message_tokens(messages)
    assert estimate_request_tokens({"model": "m", "messages": messages}) == (
        prompt,
        DEFAULT_OUTPUT_BUDGET,
    )
    assert estimate_request_tokens({"messages": messages, "max_tokens": 10}) == (prompt, 10)
    both = {"messages": messages, "max_tokens": 10, "max_completion_tokens": 20}
    assert estimate_request_tokens(both) == (prompt, 20)


def test_request_tokens_count_tool_definitions() -> None:
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    without, _ = estimate_request_tokens({"messages": messages})
    with_tools, _ = estimate_request_tokens({"messages": messages, "tools": tools})
    assert with_tools > without + 10


def test_request_tokens_for_embeddings_bodies() -> None:
    assert estimate_request_tokens({"input": "hello world"}) == (2, 0)
    assert estimate_request_tokens({"input": ["hello world", "hello"]}) == (3, 0)
    assert estimate_request_tokens({"input": [[1, 2, 3], [4]]}) == (4, 0)
    assert estimate_request_tokens({"input": [1, 2, 3]}) == (3, 0)
    assert estimate_request_tokens({"model": "m"}) == (0, 0)


def test_a_responses_body_counts_its_instructions_input_and_tools():
    text_only = {"model": "m", "input": "Hello there, how are you?"}
    items = {
        "model": "m",
        "instructions": "Be brief.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hello"}]}],
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "max_output_tokens": 64,
    }

    prompt, budget = estimate_response_tokens(text_only)
    assert prompt == estimate_tokens("Hello there, how are you?")
    assert budget == DEFAULT_OUTPUT_BUDGET
    prompt, budget = estimate_response_tokens(items)
    assert prompt > estimate_tokens("Be brief. Hello")
    assert budget == 64
