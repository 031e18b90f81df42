"""A generation job's idempotency key: the same spec again is the same job; another spec
with the key is a conflict, never the old job."""

from __future__ import annotations

import pytest

from datamill.errors import Conflict
from tests.api.test_generation import SIM, spec


async def test_a_key_reused_with_another_spec_is_a_conflict(make_runtime):
    runtime = await make_runtime(SIM)
    service = runtime.generation
    first = await service.create(spec(), idempotency_key="nightly")
    assert (await service.create(spec(), idempotency_key="nightly")).id == first.id

    with pytest.raises(Conflict) as caught:
        await service.create(spec(target={"per_cell": 5}), idempotency_key="nightly")
    assert first.id in str(caught.value)
    assert caught.value.param == "Idempotency-Key"
    assert (await service.create(spec(), idempotency_key="other")).id != first.id
