"""What ``deployments.<name>.options`` may say for a `gemini` deployment."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from datamill.providers.options import parse_options as parse_provider_options
from datamill.settings import DeploymentConfig

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"

# Gemini's HarmBlockThreshold values (API reference, "Safety settings").
SafetyThreshold = Literal[
    "HARM_BLOCK_THRESHOLD_UNSPECIFIED",
    "BLOCK_LOW_AND_ABOVE",
    "BLOCK_MEDIUM_AND_ABOVE",
    "BLOCK_ONLY_HIGH",
    "BLOCK_NONE",
    "OFF",
]


class SafetySetting(BaseModel):
    """One entry of Gemini's ``safetySettings``, sent with every chat request as given."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str = Field(pattern=r"^HARM_CATEGORY_[A-Z_]+$")
    threshold: SafetyThreshold


class GeminiOptions(BaseModel):
    """Options of a `gemini` deployment; all optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_version: str = Field(
        default="v1beta",
        pattern=r"^v\d+(alpha|beta)?\d*$",
        description="the API version in every URL; batch mode and JSON schemas need v1beta",
    )
    safety_settings: tuple[SafetySetting, ...] = Field(
        default=(), description="passed as the request's safetySettings"
    )
    external_image_urls: bool = Field(
        default=True,
        description="send http(s) image URLs as fileData (Gemini fetches them); "
        "false rejects them (models that cannot fetch URLs)",
    )
    embedding_task_type: str | None = Field(
        default=None,
        pattern=r"^[A-Z_]+$",
        description="taskType of embedding requests, e.g. RETRIEVAL_DOCUMENT",
    )
    batch_display_name: str = Field(
        default="datamill", min_length=1, max_length=128, description="displayName of batches"
    )


def parse_options(deployment: DeploymentConfig) -> GeminiOptions:
    """Validate a deployment's options; `ConfigError` names ``deployments.<name>.options.<key>``."""
    return parse_provider_options(deployment, GeminiOptions)
