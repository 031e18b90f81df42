"""The built-in `sim` provider: a simulated LLM for users with no keys, demos and tests."""

from datamill.providers.sim.provider import (
    SimOptions,
    SimProvider,
    create_sim_provider,
    parse_options,
)

__all__ = ["SimOptions", "SimProvider", "create_sim_provider", "parse_options"]
