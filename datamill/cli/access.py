"""`datamill projects create|list` and `datamill keys create|list|revoke`.

These act on the store directly, as its operator: they need no key (whoever can open the
store is trusted with it), which is how the first admin key is made. A new key is printed
once; only its hash is stored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape

from datamill.cli.common import console, print_columns, print_json, stdout, when
from datamill.cli.store import run_on_store
from datamill.protocol.access import KeyObject, Role
from datamill.render.access import key_object, project_object
from datamill.runtime import Runtime

projects_app = typer.Typer(help="Projects: every object belongs to one.", no_args_is_help=True)
keys_app = typer.Typer(
    help="API keys: each bound to one project and one role.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="print the API's JSON object")]
ProjectOption = Annotated[
    str, typer.Option("--project", help="the project's name or id (see `datamill projects list`)")
]


@projects_app.command("create")
def create_project(
    name: Annotated[str, typer.Argument(help="a unique name: letters, digits, '.', '_', '-'")],
    json: JsonOption = False,
) -> None:
    """Create a project. Give it keys with `datamill keys create --project NAME`."""

    async def work(runtime: Runtime) -> None:
        project = project_object(await runtime.auth.create_project(name))
        if json:
            print_json(project.model_dump(exclude={"admin_key"}))
            return
        stdout.print(project.id, markup=False, highlight=False)
        console.print(
            f"created project {escape(project.name)}; next: "
            f"datamill keys create --project {escape(project.name)} --role admin"
        )

    run_on_store(work)


@projects_app.command("list")
def list_projects(json: JsonOption = False) -> None:
    """Every project, oldest first."""

    async def work(runtime: Runtime) -> None:
        found = [project_object(p) for p in await runtime.auth.list_projects()]
        if json:
            print_json([p.model_dump(exclude={"admin_key"}) for p in found])
            return
        rows = [("ID", "NAME", "CREATED")]
        rows += [(p.id, p.name, when(p.created_at)) for p in found]
        print_columns(rows)

    run_on_store(work)


@keys_app.command("create")
def create_key(
    project: ProjectOption,
    role: Annotated[Role, typer.Option(help="admin, member, reviewer or viewer")],
    expires: Annotated[
        float | None, typer.Option(help="days until the key stops working (default: never)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="a note to tell keys apart")] = None,
    requests_per_minute: Annotated[
        int | None, typer.Option(min=1, help="gateway calls and batch creations per minute")
    ] = None,
    spend_per_day: Annotated[
        float | None, typer.Option(min=0, help="USD the key may spend per 24 hours")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Create a key and print it, this once: only its hash is kept."""

    async def work(runtime: Runtime) -> KeyObject:
        found = await runtime.auth.find_project(project)
        key, record = await runtime.auth.create_key(
            found.id,
            role,
            name=name,
            expires_in_days=expires,
            requests_per_minute=requests_per_minute,
            spend_per_day=spend_per_day,
        )
        return key_object(record, key=key)

    created = run_on_store(work)
    if json:
        print_json(created.model_dump())
        return
    stdout.print(created.key, markup=False, highlight=False)
    expiry = f", expires {when(created.expires_at)} UTC" if created.expires_at else ""
    console.print(
        f"created {created.id}: {_with_article(created.role.value)} key of project "
        f"{escape(created.project)}{expiry}. It is shown only now: keep it somewhere safe."
    )


@keys_app.command("list")
def list_keys(
    project: Annotated[
        str | None, typer.Option("--project", help="only this project's keys (name or id)")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Keys (never the keys themselves: their prefixes), revoked and expired ones too."""

    async def work(runtime: Runtime) -> list[KeyObject]:
        project_id = (await runtime.auth.find_project(project)).id if project else None
        return [key_object(r) for r in await runtime.auth.list_keys(project_id=project_id)]

    found = run_on_store(work)
    if json:
        print_json([k.model_dump() for k in found])
        return
    if not found:
        console.print("no API key yet: the server runs in local mode on loopback")
        return
    rows = [("ID", "PREFIX", "PROJECT", "ROLE", "STATE", "LAST USED", "NAME")]
    for k in found:
        rows.append(
            (
                k.id,
                k.prefix + "…",
                k.project,
                k.role.value,
                _state(k),
                when(k.last_used_at),
                k.name or "",
            )
        )
    print_columns(rows)


def _state(key: KeyObject) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= datetime.now(UTC).timestamp():
        return "expired"
    return f"until {when(key.expires_at)}" if key.expires_at is not None else "active"


@keys_app.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="the key's id (key_...)")],
    json: JsonOption = False,
) -> None:
    """Revoke a key: it stops working within a second on every server."""

    async def work(runtime: Runtime) -> KeyObject:
        return key_object(await runtime.auth.revoke_key(key_id))

    revoked = run_on_store(work)
    if json:
        print_json(revoked.model_dump())
        return
    owner = escape(revoked.project)
    console.print(f"revoked {revoked.id} ({revoked.prefix}…, {revoked.role.value} of {owner})")


def _with_article(word: str) -> str:
    """``word`` after "a", or "an" before a vowel: "an admin", "a member"."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"
