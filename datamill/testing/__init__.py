"""Test and benchmark aids that ship with datamill (a mock OpenAI-compatible provider)."""
