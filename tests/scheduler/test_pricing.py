"""What a call costs at its deployment's prices, online and through a native batch API."""

from __future__ import annotations

import pytest

from datamill.providers.base import Usage
from datamill.scheduler.pricing import batch_prices, call_cost, online_prices
from datamill.settings import DeploymentConfig


def deployment(**prices: float) -> DeploymentConfig:
    return DeploymentConfig(name="d", provider="sim", **prices)


def test_input_cached_and_output_tokens_at_their_prices():
    config = deployment(input_price=2.0, output_price=8.0, cached_input_price=0.5)
    usage = Usage(input_tokens=1_000, cached_tokens=400, output_tokens=250, reasoning_tokens=100)

    # 600 fresh input at $2/M, 400 cached at $0.50/M, 250 output (reasoning included) at $8/M
    assert call_cost(config, usage) == pytest.approx((600 * 2 + 400 * 0.5 + 250 * 8) / 1e6)


def test_cached_tokens_cost_the_input_price_unless_priced():
    config = deployment(input_price=3.0, output_price=0.0)
    assert call_cost(config, Usage(input_tokens=100, cached_tokens=100)) == pytest.approx(3e-4)


def test_native_batches_cost_half_unless_priced():
    config = deployment(input_price=2.0, output_price=8.0, cached_input_price=1.0)
    usage = Usage(input_tokens=1_000, cached_tokens=200, output_tokens=500)

    assert call_cost(config, usage, native=True) == pytest.approx(call_cost(config, usage) / 2)
    priced = deployment(input_price=2.0, output_price=8.0, batch_input_price=1.5)
    prices = batch_prices(priced)
    assert (prices.input, prices.cached_input, prices.output) == (1.5, 1.0, 4.0)
    assert online_prices(priced).cached_input == 2.0


def test_free_deployments_cost_nothing():
    assert call_cost(deployment(), Usage(input_tokens=10**9, output_tokens=10**9)) == 0.0
