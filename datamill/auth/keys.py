"""API keys as strings: made once from 32 random bytes, known afterwards by their SHA-256.

A key is ``dm-`` and 43 URL-safe characters. Its first 11 characters (``dm-`` and 8 more)
are its visible prefix, shown in listings so people can tell keys apart. The key has 256
random bits, so one round of SHA-256 is the right hash: a slow password hash protects
guessable secrets, and nothing about this one is guessable.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "dm-"
_VISIBLE = len(KEY_PREFIX) + 8


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def visible_prefix(key: str) -> str:
    return key[:_VISIBLE]


def csrf_token(key: str) -> str:
    """The token a signed-in dashboard sends with each change (derived from its key, so no
    state is kept; only someone holding the key can compute it)."""
    return hashlib.sha256(b"datamill-csrf\x00" + key.encode()).hexdigest()[:32]
