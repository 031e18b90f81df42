"""`GET /api/deployments` on both stores: live figures from this process's gate, and the
state other processes published."""

from __future__ import annotations

from datamill.cli.server import describe_deployments
from tests.conftest import mock_deployment
from tests.helpers import chat_line, jsonl, running_worker


async def test_deployments_show_live_figures_here_and_in_other_processes(make_api, mock):
    api = await make_api([mock_deployment(mock, input_price=2.0, output_price=4.0)])
    batch = await api.submit(jsonl(chat_line(f"r{i}") for i in range(10)))
    async with running_worker(api.runtime):
        await api.wait_for(batch["id"])
    # Another process calling the same deployment, as its monitor publishes it.
    api.runtime.events.publish(
        "deployment",
        {"name": "mock", "process": {"id": "box-2:4242", "pid": 4242}, "live": {"in_flight": 7}},
    )
    await api.runtime.events.flush()

    response = await api.client.get("/api/deployments")
    assert response.status_code == 200, response.text
    [deployment] = response.json()["data"]
    assert deployment["name"] == "mock"
    assert deployment["base_url"] == mock.base_url
    assert "api_key" not in deployment
    live = deployment["live"]
    assert (live["calls"], live["errors"], live["error_rate"]) == (10, 0, 0.0)
    assert live["calls_per_minute"] == 10
    assert set(live["latency_ms"]) == {"p50", "p95", "p99"}
    assert live["cost_usd"] > 0
    assert live["circuit"] == "closed"
    assert deployment["process"]["workers"]
    [other] = deployment["elsewhere"]
    assert (other["process"]["id"], other["live"]) == ("box-2:4242", {"in_flight": 7})


async def test_credentials_in_a_base_url_are_never_shown(make_api, mock):
    api = await make_api(
        [mock_deployment(mock, base_url=mock.base_url.replace("://", "://al:s3cret@"))]
    )
    batch = await api.submit(jsonl([chat_line("a")]))
    async with running_worker(api.runtime):
        await api.wait_for(batch["id"])

    for path in ("/api/info", "/api/deployments"):
        response = await api.client.get(path)
        assert response.status_code == 200, response.text
        assert "s3cret" not in response.text
        assert "al:" not in response.text
    [deployment] = (await api.client.get("/api/deployments")).json()["data"]
    assert deployment["base_url"] == mock.base_url.replace("://", "://***@")
    [line] = describe_deployments(api.runtime.settings)
    assert "s3cret" not in line
    assert mock.base_url.replace("://", "://***@") in line
