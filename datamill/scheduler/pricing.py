"""What a call costs: its token usage at its deployment's prices.

Prices are USD per million tokens (``datamill.toml``). Cached input tokens are charged at
``cached_input_price`` (the input price when unset), the rest of the input at
``input_price``, output tokens (reasoning included, as providers count them) at
``output_price``. Through a provider's native batch API the batch prices apply, half the
online ones unless configured, as OpenAI, Anthropic and Google charge.
"""

from __future__ import annotations

from dataclasses import dataclass

from datamill.providers.types import Usage
from datamill.settings import DeploymentConfig

_PER_TOKEN = 1e-6


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per million tokens."""

    input: float
    cached_input: float
    output: float

    def cost(self, usage: Usage) -> float:
        """USD for ``usage``."""
        cached = min(usage.cached_tokens, usage.input_tokens)
        fresh = usage.input_tokens - cached
        return (
            fresh * self.input + cached * self.cached_input + usage.output_tokens * self.output
        ) * _PER_TOKEN


def online_prices(config: DeploymentConfig) -> Prices:
    cached = config.cached_input_price
    return Prices(
        input=config.input_price,
        cached_input=config.input_price if cached is None else cached,
        output=config.output_price,
    )


def batch_prices(config: DeploymentConfig) -> Prices:
    """Prices through the provider's native batch API."""
    online = online_prices(config)
    return Prices(
        input=online.input / 2 if config.batch_input_price is None else config.batch_input_price,
        cached_input=online.cached_input / 2,
        output=online.output / 2
        if config.batch_output_price is None
        else config.batch_output_price,
    )


def call_cost(config: DeploymentConfig, usage: Usage, *, native: bool = False) -> float:
    """USD for one call's ``usage`` on the deployment ``config``."""
    prices = batch_prices(config) if native else online_prices(config)
    return prices.cost(usage)
