"""datamill: a self-hosted LLM data engine."""

__version__ = "0.1.0"
