"""Files API objects (openai-python `types/file_object.py`, `types/file_deleted.py`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel


class FilePurpose(StrEnum):
    """Purposes OpenAI accepts on upload; datamill runs batches from `batch` files."""

    assistants = "assistants"
    assistants_output = "assistants_output"
    batch = "batch"  # input of a batch
    batch_output = "batch_output"  # output and error files datamill writes
    fine_tune = "fine-tune"
    fine_tune_results = "fine-tune-results"
    vision = "vision"
    user_data = "user_data"
    evals = "evals"


# Purposes a client may upload (the *_output and *-results ones are written by the server).
UPLOADABLE_PURPOSES = frozenset(
    {
        FilePurpose.assistants,
        FilePurpose.batch,
        FilePurpose.fine_tune,
        FilePurpose.vision,
        FilePurpose.user_data,
        FilePurpose.evals,
    }
)


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"] = "processed"
    expires_at: int | None = None
    status_details: str | None = None


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True
