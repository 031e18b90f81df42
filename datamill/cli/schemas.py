"""`datamill schemas create|update|list|show|delete|validate|label-studio-config`: a
project's task schemas, on the store directly, through the same `TaskSchemaService` as
`/api/task-schemas`. FILE is a task schema in YAML or JSON."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from datamill.cli.common import console, fail, print_columns, print_json, stdout, when
from datamill.cli.store import run_on_store
from datamill.errors import ApiError
from datamill.protocol.task_schemas import TaskSchemaObject
from datamill.render.task_schemas import task_schema_object
from datamill.runtime import Runtime

if TYPE_CHECKING:
    from datamill.protocol.task_schema_format import TaskSchema

app = typer.Typer(
    help="Task schemas: how a sample type is shown, validated, reviewed and exported.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="print the API's JSON object")]
ProjectOption = Annotated[
    str, typer.Option("--project", help="the project's name or id (default: default)")
]
FileArgument = Annotated[
    Path, typer.Argument(metavar="FILE", help="a task schema, YAML or JSON", dir_okay=False)
]
NameArgument = Annotated[str, typer.Argument(metavar="NAME", help="the schema's name")]
VersionOption = Annotated[
    int | None, typer.Option("--version", min=1, help="a past version (default: the latest)")
]


def _read(path: Path) -> TaskSchema:
    # Imported here: `datamill --help` need not load the schema format's libraries.
    from datamill.task_schemas.files import read_task_schema_file

    try:
        return read_task_schema_file(path)
    except ApiError as exc:
        fail(exc.message)
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc}")


def _show(found: TaskSchemaObject, json: bool, done: str) -> None:
    if json:
        print_json(found.model_dump())
        return
    stdout.print(f"{found.name} v{found.version}", markup=False, highlight=False)
    console.print(done)


@app.command("create")
def create(
    path: FileArgument, project: ProjectOption = "default", json: JsonOption = False
) -> None:
    """Store a new schema (version 1)."""
    schema = _read(path)

    async def work(runtime: Runtime) -> TaskSchemaObject:
        found = await runtime.auth.find_project(project)
        return task_schema_object(await runtime.task_schemas.create(found.id, schema))

    _show(run_on_store(work), json, "created")


@app.command("update")
def update(
    path: FileArgument, project: ProjectOption = "default", json: JsonOption = False
) -> None:
    """Store the file as the next version of the schema it names."""
    schema = _read(path)

    async def work(runtime: Runtime) -> TaskSchemaObject:
        found = await runtime.auth.find_project(project)
        record = await runtime.task_schemas.update(found.id, schema.name, schema)
        return task_schema_object(record)

    _show(run_on_store(work), json, "updated: the older versions stay readable")


@app.command("list")
def list_schemas(project: ProjectOption = "default", json: JsonOption = False) -> None:
    """The project's schemas, their latest versions."""

    async def work(runtime: Runtime) -> list[TaskSchemaObject]:
        found = await runtime.auth.find_project(project)
        return [task_schema_object(r) for r in await runtime.task_schemas.list_schemas(found.id)]

    schemas = run_on_store(work)
    if json:
        print_json([s.model_dump() for s in schemas])
        return
    rows = [("NAME", "VERSION", "UPDATED", "DESCRIPTION")]
    for s in schemas:
        description = str(s.definition.get("description") or "")
        rows.append((s.name, str(s.version), when(s.created_at), description))
    print_columns(rows)


@app.command("show")
def show(
    name: NameArgument,
    version: VersionOption = None,
    project: ProjectOption = "default",
    json: JsonOption = False,
) -> None:
    """A schema (its latest version, or --version N) as YAML; --json: the API's object."""

    async def work(runtime: Runtime) -> TaskSchemaObject:
        found = await runtime.auth.find_project(project)
        record = await runtime.task_schemas.get(found.id, name, version=version)
        return task_schema_object(record)

    found = run_on_store(work)
    if json:
        print_json(found.model_dump())
        return
    import yaml

    text = yaml.safe_dump(found.definition, sort_keys=False, allow_unicode=True)
    stdout.print(text, markup=False, highlight=False, end="")
    console.print(f"{escape(found.name)} version {found.version}")


@app.command("delete")
def delete(name: NameArgument, project: ProjectOption = "default") -> None:
    """Delete a schema (every version; its samples fall back to their dataset's default)."""

    async def work(runtime: Runtime) -> None:
        found = await runtime.auth.find_project(project)
        await runtime.task_schemas.delete(found.id, name)

    run_on_store(work)
    console.print(f"deleted {escape(name)}")


@app.command("validate")
def validate(path: FileArgument) -> None:
    """Check a schema file without storing it; the first problem names its key path."""
    schema = _read(path)
    questions = len(schema.review.questions)
    stdout.print(f"{path}: valid", markup=False, highlight=False)
    console.print(f"{escape(schema.name)}: {questions} review question(s)")


@app.command("label-studio-config")
def label_studio_config(
    name: NameArgument,
    version: VersionOption = None,
    project: ProjectOption = "default",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="write it to this file", dir_okay=False)
    ] = None,
) -> None:
    """The schema's Label Studio labeling config (XML), on stdout or to a file."""

    async def work(runtime: Runtime) -> str:
        found = await runtime.auth.find_project(project)
        return await runtime.task_schemas.label_studio_config(found.id, name, version=version)

    xml = run_on_store(work)
    if output is None:
        stdout.print(xml, markup=False, highlight=False, end="")
        return
    try:
        output.write_text(xml, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc}")
    console.print(f"wrote {escape(str(output))}")
