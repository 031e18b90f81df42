"""The built-in `gemini` provider: Google's Gemini API, translated to and from OpenAI's."""

from datamill.providers.gemini.native import GeminiBatches
from datamill.providers.gemini.options import GeminiOptions, parse_options
from datamill.providers.gemini.provider import GeminiProvider, create_gemini_provider

__all__ = [
    "GeminiBatches",
    "GeminiOptions",
    "GeminiProvider",
    "create_gemini_provider",
    "parse_options",
]
