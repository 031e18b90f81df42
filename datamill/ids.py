"""OpenAI-style prefixed identifiers, made in one place."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_file_id() -> str:
    return f"file-{_random(24)}"


def new_batch_id() -> str:
    return f"batch_{secrets.token_hex(16)}"


def new_worker_id() -> str:
    return f"worker_{secrets.token_hex(8)}"


def new_native_job_id() -> str:
    """A native job: one upstream batch of a native-mode batch (also its upstream label)."""
    return f"njob_{secrets.token_hex(12)}"


def new_dataset_id() -> str:
    return f"ds_{secrets.token_hex(12)}"


def new_export_id() -> str:
    """One dataset export, as its `export.completed` event names it."""
    return f"exp_{secrets.token_hex(12)}"


def new_review_id() -> str:
    return f"rev_{secrets.token_hex(12)}"


def new_sample_id() -> str:
    return f"smp_{secrets.token_hex(12)}"


def new_response_id() -> str:
    """A response object the gateway made by translating a chat completion."""
    return f"resp_{secrets.token_hex(24)}"


def new_response_item_id(kind: str) -> str:
    """An output item of such a response: ``msg`` (message) or ``fc`` (function call)."""
    return f"{kind}_{secrets.token_hex(24)}"


def new_provider_request_id() -> str:
    """Used when a provider answered without a request id of its own."""
    return f"req_{secrets.token_hex(16)}"


def batch_request_id(batch_id: str, line: int) -> str:
    """The ``id`` of an output line: stable, so a re-finalized batch writes the same lines."""
    return f"{batch_request_id_prefix(batch_id)}{line:08d}"


def batch_request_id_prefix(batch_id: str) -> str:
    """`batch_request_id` without its line number (eight digits, zero-padded)."""
    return f"batch_req_{batch_id.removeprefix('batch_')[:16]}"


def new_project_id() -> str:
    return f"proj_{secrets.token_hex(8)}"


def new_key_id() -> str:
    """An API key's id (public: listed, revoked by); never the key itself."""
    return f"key_{secrets.token_hex(8)}"


def new_webhook_id() -> str:
    """A webhook endpoint of a project."""
    return f"wh_{secrets.token_hex(12)}"


def new_webhook_message_id() -> str:
    """A webhook message: its ``webhook-id`` header, the same on every attempt and replay."""
    return f"msg_{secrets.token_hex(12)}"
