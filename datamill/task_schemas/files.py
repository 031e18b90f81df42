"""Task schemas read from YAML or JSON text, a file, or a mapping: at most
`MAX_SCHEMA_BYTES`, YAML aliases refused (generation's bounded loader), and every problem
an `InvalidRequest` naming its key path (``schema.review.questions[0].kind``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from datamill.errors import InvalidRequest
from datamill.generation.spec import load_spec_data, spec_error
from datamill.protocol.limits import json_depth_exceeds, too_deep_message
from datamill.protocol.task_schema_format import MAX_SCHEMA_BYTES, TaskSchema
from datamill.task_schemas.label_studio import labeling_config
from datamill.task_schemas.label_studio_names import NameConflict

CODE = "invalid_task_schema"


def _too_large(size: int, param: str) -> InvalidRequest:
    return InvalidRequest(
        f"{param}: the schema is {size} bytes, more than the {MAX_SCHEMA_BYTES} a schema may have",
        param=param,
        code=CODE,
    )


def parse_task_schema(data: dict[str, Any] | str, *, param: str = "schema") -> TaskSchema:
    """A task schema given as a mapping or as YAML/JSON text."""
    if isinstance(data, str):
        data = load_spec_data(
            data, param=param, what="schema", max_bytes=MAX_SCHEMA_BYTES, code=CODE
        )
    if json_depth_exceeds(data):
        raise InvalidRequest(too_deep_message(param), param=param, code=CODE)
    size = len(orjson.dumps(data, default=str))
    if size > MAX_SCHEMA_BYTES:
        raise _too_large(size, param)
    try:
        schema = TaskSchema.model_validate(data)
    except ValidationError as exc:
        found = spec_error(exc, param=param)
        raise InvalidRequest(found.message, param=found.param, code=CODE) from None
    return checked(schema, param=param)


def checked(schema: TaskSchema, *, param: str = "schema") -> TaskSchema:
    """``schema``, once the checks beyond its model pass: its size as JSON, and its Label
    Studio names (each must mean one thing)."""
    size = len(orjson.dumps(schema.model_dump(mode="json")))
    if size > MAX_SCHEMA_BYTES:
        raise _too_large(size, param)
    try:
        labeling_config(schema)
    except NameConflict as exc:
        raise InvalidRequest(f"{param}: {exc}", param=f"{param}.review", code=CODE) from None
    return schema


def read_task_schema_file(path: Path) -> TaskSchema:
    """A task schema file (YAML or JSON)."""
    size = path.stat().st_size
    if size > MAX_SCHEMA_BYTES:
        raise _too_large(size, path.name)
    return parse_task_schema(path.read_text(encoding="utf-8"), param=path.name)
