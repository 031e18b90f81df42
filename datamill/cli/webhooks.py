"""`datamill webhooks create|list|test|deliveries|replay|delete`: a project's webhook endpoints
and their delivery log, on the store directly (as `datamill keys`), through the same
service as `/api/webhooks`. A replay is sent by a running worker process."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from datamill.cli.common import console, print_columns, print_json, stdout, when
from datamill.cli.store import run_on_store
from datamill.protocol.webhooks import WebhookDeliveryObject, WebhookObject
from datamill.render.webhooks import delivery_object, webhook_object
from datamill.runtime import Runtime

app = typer.Typer(
    help="Webhook endpoints (Standard Webhooks) and their delivery log.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="print the API's JSON object")]
ProjectOption = Annotated[
    str, typer.Option("--project", help="the project's name or id (default: default)")
]
WebhookArgument = Annotated[str, typer.Argument(metavar="WEBHOOK_ID", help="the endpoint (wh_...)")]


@app.command("create")
def create(
    url: Annotated[str, typer.Argument(help="where to POST: an http(s) URL")],
    project: ProjectOption = "default",
    event_type: Annotated[
        list[str] | None,
        typer.Option("--event-type", help="a type to send (repeat it; default: every type)"),
    ] = None,
    description: Annotated[str | None, typer.Option(help="a note")] = None,
    json: JsonOption = False,
) -> None:
    """Create an endpoint and print its secret, this once."""

    async def work(runtime: Runtime) -> WebhookObject:
        found = await runtime.auth.find_project(project)
        record = await runtime.webhooks.create(
            found.id, url=url, description=description, event_types=event_type or []
        )
        return webhook_object(record, with_secret=True)

    created = run_on_store(work)
    if json:
        print_json(created.model_dump())
        return
    stdout.print(created.secret, markup=False, highlight=False)
    console.print(
        f"created {created.id} for {escape(created.url)}: the line above is its signing "
        "secret, shown only now"
    )


@app.command("list")
def list_endpoints(project: ProjectOption = "default", json: JsonOption = False) -> None:
    """The project's endpoints, oldest first (never their secrets)."""

    async def work(runtime: Runtime) -> list[WebhookObject]:
        found = await runtime.auth.find_project(project)
        return [webhook_object(r) for r in await runtime.webhooks.list_endpoints(found.id)]

    found = run_on_store(work)
    if json:
        print_json([e.model_dump() for e in found])
        return
    rows = [("ID", "STATE", "EVENT TYPES", "URL")]
    for e in found:
        state = "enabled" if e.enabled else f"disabled: {e.disabled_reason}"
        rows.append((e.id, state, ",".join(e.event_types) or "all", e.url))
    print_columns(rows)


@app.command("test")
def send_test(
    webhook_id: WebhookArgument, project: ProjectOption = "default", json: JsonOption = False
) -> None:
    """Enqueue a webhook.test message to the endpoint; a worker sends it."""

    async def work(runtime: Runtime) -> WebhookDeliveryObject:
        found = await runtime.auth.find_project(project)
        return delivery_object(await runtime.webhooks.send_test(found.id, webhook_id))

    sent = run_on_store(work)
    if json:
        print_json(sent.model_dump())
        return
    stdout.print(sent.id, markup=False, highlight=False)
    console.print("enqueued: a running worker sends it")


@app.command("deliveries")
def deliveries(
    webhook_id: WebhookArgument,
    project: ProjectOption = "default",
    limit: Annotated[int, typer.Option(min=1, max=100, help="how many, newest first")] = 20,
    json: JsonOption = False,
) -> None:
    """The endpoint's delivery log, newest first."""

    async def work(runtime: Runtime) -> list[WebhookDeliveryObject]:
        found = await runtime.auth.find_project(project)
        records, _ = await runtime.webhooks.deliveries(
            found.id, webhook_id, limit=limit, after=None
        )
        return [delivery_object(r) for r in records]

    found = run_on_store(work)
    if json:
        print_json([d.model_dump() for d in found])
        return
    rows = [("ID", "TYPE", "STATUS", "CREATED", "LAST", "ATTEMPTS")]
    for d in found:
        last = str(d.last_status_code) if d.last_status_code else (d.last_error or "-")
        rows.append((d.id, d.event_type, d.status, when(d.created_at), last[:60], str(d.attempts)))
    print_columns(rows, right=5)


@app.command("replay")
def replay(
    webhook_id: WebhookArgument,
    delivery_id: Annotated[
        str, typer.Argument(metavar="DELIVERY_ID", help="the message (msg_...)")
    ],
    project: ProjectOption = "default",
    json: JsonOption = False,
) -> None:
    """Make a delivery due again now (same webhook-id and body); a worker sends it."""

    async def work(runtime: Runtime) -> WebhookDeliveryObject:
        found = await runtime.auth.find_project(project)
        return delivery_object(await runtime.webhooks.replay(found.id, webhook_id, delivery_id))

    replayed = run_on_store(work)
    if json:
        print_json(replayed.model_dump())
        return
    console.print(f"{replayed.id} is due again now: a running worker sends it")


@app.command("delete")
def delete(webhook_id: WebhookArgument, project: ProjectOption = "default") -> None:
    """Delete an endpoint and its delivery log."""

    async def work(runtime: Runtime) -> None:
        found = await runtime.auth.find_project(project)
        await runtime.webhooks.delete(found.id, webhook_id)

    run_on_store(work)
    console.print(f"deleted {webhook_id}")
