"""The batch mode option through HTTP, on both stores: ``datamill.mode`` (or
``metadata.datamill_mode``) on create, the mode on the Batch object, and the 400s that name
the field at fault."""

from __future__ import annotations

from tests.api.conftest import assert_error
from tests.conftest import mock_deployment
from tests.helpers import CHAT, chat_line, jsonl, running_worker


def modes(batch: dict) -> tuple[str, str]:
    """The Batch object's mode and the mode asked for."""
    return batch["datamill"]["mode"], batch["datamill"]["requested_mode"]


async def test_a_native_batch_shows_its_mode_and_runs_upstream(make_api, mock):
    api = await make_api([mock_deployment(mock)], native_poll_interval=0.05)

    created = await api.submit(jsonl([chat_line("a"), chat_line("b")]), datamill={"mode": "native"})
    assert modes(created) == ("native", "native")
    async with running_worker(api.runtime):
        done = await api.wait_for(created["id"])

    assert done["status"] == "completed"
    assert modes(done) == ("native", "native")
    assert done["request_counts"] == {"total": 2, "completed": 2, "failed": 0}
    _, lines = await api.lines(f"/v1/files/{done['output_file_id']}/content")
    assert [line["custom_id"] for line in lines] == ["a", "b"]
    assert mock.stats()["upstream_batches"] == 1
    listed = (await api.client.get("/v1/batches")).json()["data"]
    assert listed[0]["datamill"]["mode"] == "native"


async def test_auto_shows_what_it_asked_for_until_it_is_resolved(make_api, mock):
    api = await make_api([mock_deployment(mock)], native_poll_interval=0.05)

    created = await api.submit(jsonl([chat_line("a")]), datamill={"mode": "auto"})
    assert modes(created) == ("auto", "auto")
    async with running_worker(api.runtime):
        done = await api.wait_for(created["id"])

    # Prices left at zero: the batch API is not cheaper, so it ran online.
    assert modes(done) == ("online", "auto")
    assert (mock.stats()["total"], mock.stats()["upstream_batches"]) == (1, 0)


async def test_an_ordinary_batch_is_online(make_api, mock):
    api = await make_api([mock_deployment(mock)])

    created = await api.submit(jsonl([chat_line("a")]))

    assert modes(created) == ("online", "online")


async def test_the_mode_may_come_from_the_metadata(make_api, mock):
    api = await make_api([mock_deployment(mock)], native_poll_interval=0.05)

    created = await api.submit(jsonl([chat_line("a")]), metadata={"datamill_mode": "native"})
    async with running_worker(api.runtime):
        done = await api.wait_for(created["id"])

    assert modes(done) == ("native", "native")
    assert done["metadata"] == {"datamill_mode": "native"}
    assert mock.stats()["upstream_batches"] == 1
    # The datamill field wins over the metadata.
    both = await api.submit(
        jsonl([chat_line("b")]), metadata={"datamill_mode": "native"}, datamill={"mode": "online"}
    )
    assert both["datamill"]["requested_mode"] == "online"


async def test_bad_modes_are_refused_naming_the_field(make_api, mock):
    api = await make_api([mock_deployment(mock)])
    file = await api.upload(jsonl([chat_line("a")]))
    base = {"input_file_id": file["id"], "endpoint": CHAT, "completion_window": "24h"}

    bad = await api.client.post("/v1/batches", json={**base, "datamill": {"mode": "cheap"}})
    error = assert_error(bad, 400, param="datamill.mode", code="invalid_value")
    assert "native" in error["message"]
    bad = await api.client.post("/v1/batches", json={**base, "metadata": {"datamill_mode": "x"}})
    error = assert_error(bad, 400, param="metadata.datamill_mode", code="invalid_value")
    assert "'x'" in error["message"]
    assert (await api.client.get("/v1/batches")).json()["data"] == []


async def test_native_is_refused_when_no_deployment_offers_it(make_api, mock):
    api = await make_api(
        [mock_deployment(mock, options={"native_batches": False})],
    )
    file = await api.upload(jsonl([chat_line("a")]))
    base = {"input_file_id": file["id"], "endpoint": CHAT, "completion_window": "24h"}

    refused = await api.client.post("/v1/batches", json={**base, "datamill": {"mode": "native"}})
    error = assert_error(refused, 400, param="datamill.mode", code="invalid_value")
    assert "native batch API" in error["message"]
    refused = await api.client.post(
        "/v1/batches", json={**base, "metadata": {"datamill_mode": "native"}}
    )
    assert_error(refused, 400, param="metadata.datamill_mode", code="invalid_value")
    # auto is fine: it runs online.
    assert (await api.create_batch(file["id"], datamill={"mode": "auto"}))["status"] == "validating"
