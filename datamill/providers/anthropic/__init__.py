"""The built-in `anthropic` provider: Anthropic's Messages and Message Batches APIs."""

from datamill.providers.anthropic.native import AnthropicBatches
from datamill.providers.anthropic.options import AnthropicOptions, parse_options
from datamill.providers.anthropic.provider import AnthropicProvider, create_anthropic_provider

__all__ = [
    "AnthropicBatches",
    "AnthropicOptions",
    "AnthropicProvider",
    "create_anthropic_provider",
    "parse_options",
]
