"""The docs against the code (as datasette's test_docs.py): every setting, deployment field,
sim option, error category, validation code, CLI command and option, API route and provider
is documented, nothing documented is gone, and the commands and snippets shown work."""

from __future__ import annotations

import ast
import json
import re
import shlex
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer.main

from datamill.api.app import create_app
from datamill.cli.common import ExitCode
from datamill.cli.main import app as cli_app
from datamill.errors import ErrorCategory
from datamill.plugins import DEFAULT_PROVIDERS, ENTRY_POINT_GROUP
from datamill.providers.sim import SimOptions
from datamill.settings import AliasConfig, DeploymentConfig, Settings, load_settings
from datamill.storage.requests import CLOSING_MESSAGES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGE = ROOT / "datamill"


def read(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    """The text under ``heading`` (a markdown heading line), up to the next heading of the
    same or a higher level."""
    lines = text.splitlines()
    start = lines.index(heading)
    level = len(heading) - len(heading.lstrip("#"))
    fenced = False
    for end in range(start + 1, len(lines)):
        line = lines[end]
        fenced ^= line.startswith("```")
        if not fenced and line.startswith("#") and len(line) - len(line.lstrip("#")) <= level:
            return "\n".join(lines[start + 1 : end])
    return "\n".join(lines[start + 1 :])


def table_rows(text: str) -> dict[str, list[str]]:
    """Markdown table rows keyed by their first cell with backticks removed."""
    rows = {}
    for line in text.splitlines():
        if not line.startswith("| ") or set(line) <= {"|", "-", " "}:
            continue
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        rows[cells[0].strip("`")] = cells
    return rows


def code_blocks(text: str, *languages: str) -> Iterator[str]:
    for match in re.finditer(r"^```(\w*)\n(.*?)^```$", text, flags=re.M | re.S):
        if not languages or match.group(1) in languages:
            yield match.group(2)


# -- configuration.md -----------------------------------------------------------------------


def _default_cell(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def test_every_setting_is_documented_with_its_default():
    rows = table_rows(section(read("docs/configuration.md"), "## Environment variables"))
    fields = {
        f"DATAMILL_{name.upper()}": field
        for name, field in Settings.model_fields.items()
        if name not in {"deployments", "aliases"}
    }

    assert set(rows) - {"variable"} == set(fields)
    for variable, field in fields.items():
        assert rows[variable][1] == _default_cell(field.default), variable


def test_every_alias_key_is_documented():
    rows = table_rows(section(read("docs/configuration.md"), "## `datamill.toml`: aliases"))

    assert set(rows) - {"key"} == set(AliasConfig.model_fields)


def test_the_alias_example_loads(tmp_path: Path):
    text = section(read("docs/configuration.md"), "## `datamill.toml`: aliases")
    [example] = code_blocks(text, "toml")
    (tmp_path / "datamill.toml").write_text(example)
    keys = {"GROQ_API_KEY": "gsk-1", "CEREBRAS_API_KEY": "csk-1"}

    settings = load_settings({**keys, "DATAMILL_CONFIG": str(tmp_path / "datamill.toml")})

    [alias] = settings.aliases
    assert alias.members == ("groq-llama", "cerebras-llama", "gpu-box")
    assert [target.weight for target in alias.deployments] == [3, 1]


def test_every_deployment_field_is_documented():
    text = read("docs/configuration.md")
    rows = table_rows(section(text, "## `datamill.toml`: deployments"))
    settable = set(DeploymentConfig.model_fields) - {"api_key", "proxy_url", "source"}

    assert set(rows) - {"key", "variable"} >= settable
    assert {"key", *settable} >= set(rows) - {"variable"}  # no documented field that is gone
    for internal in ("api_key", "proxy_url", "source"):
        assert f"`{internal}`" in text


def test_every_sim_option_is_documented_with_its_default():
    rows = table_rows(section(read("docs/configuration.md"), "## The `sim` provider's options"))

    assert set(rows) - {"option"} == set(SimOptions.model_fields)
    for name, field in SimOptions.model_fields.items():
        default = field.default
        expected = "(none)" if default is None else f"`{default!r}`".replace("'", '"')
        assert rows[name][1] == expected, name
    providers = read("docs/providers.md")
    assert all(f"`{name}`" in providers for name in SimOptions.model_fields)


def test_every_gemini_option_is_documented_with_its_default():
    from datamill.providers.gemini import GeminiOptions

    rows = table_rows(section(read("docs/providers.md"), "## `gemini`"))

    assert set(rows) - {"option"} == set(GeminiOptions.model_fields)
    for name, field in GeminiOptions.model_fields.items():
        default = field.default
        expected = "(none)" if default in (None, ()) else f"`{default!r}`".replace("'", '"')
        assert rows[name][1] == expected.replace("True", "true"), name


async def test_the_gemini_example_configures_a_gemini_deployment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    from datamill.clock import SystemClock
    from datamill.plugins import create_provider
    from datamill.providers.base import ProviderContext
    from datamill.providers.gemini import GeminiProvider
    from datamill.providers.http import HttpPool

    text = section(read("docs/providers.md"), "## `gemini`")
    [config] = [block for block in code_blocks(text, "toml") if 'provider = "gemini"' in block]
    (tmp_path / "datamill.toml").write_text(config)

    [deployment] = load_settings(
        {"GEMINI_API_KEY": "k", "DATAMILL_AUTO_DEPLOYMENTS": "false"}
    ).deployments
    http = HttpPool()
    provider = create_provider(deployment, ProviderContext(http=http, clock=SystemClock()))
    await http.aclose()
    assert isinstance(provider, GeminiProvider)
    assert provider.options.safety_settings[0].threshold == "BLOCK_ONLY_HIGH"


def test_every_well_known_key_is_documented():
    from datamill.settings import WELL_KNOWN_PROVIDERS

    rows = table_rows(section(read("docs/configuration.md"), "## Well-known keys"))

    for known in WELL_KNOWN_PROVIDERS:
        assert rows[known.variable][1] == f"`{known.name}`"
        assert f"`{known.base_url}`" in rows[known.variable][2]
        assert f"`{known.provider}`" in rows[known.variable][3]
        for pattern in known.models or ():
            assert f"`{pattern}`" in rows[known.variable][3]
    assert "`OPENAI_BASE_URL`" in rows["OPENAI_API_KEY"][2]


# -- errors.md ------------------------------------------------------------------------------


def test_every_error_category_is_documented_with_its_retry_behaviour():
    rows = table_rows(section(read("docs/errors.md"), "## Error categories"))

    assert set(ErrorCategory) <= set(rows)
    for category in ErrorCategory:
        _, retried, breaker, _ = rows[category.value]
        assert retried == ("yes" if category.retryable else "no"), category
        assert breaker == ("yes" if category.trips_breaker else "no"), category


def test_the_closing_codes_are_documented():
    rows = table_rows(section(read("docs/errors.md"), "## Error categories"))

    assert set(CLOSING_MESSAGES) <= set(rows)


def validation_codes() -> set[str]:
    """Every ``code`` validation.py reports: ``report.add(line, "code", ...)`` calls and
    ``{"code": "..."}`` literals."""
    tree = ast.parse((PACKAGE / "engine" / "validation.py").read_text())
    codes = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "report"
        ):
            code = node.args[1]
            assert isinstance(code, ast.Constant), ast.unparse(node)
            codes.add(code.value)
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                # Literal codes only: ``{"code": code}`` in the report itself is not one.
                if (
                    isinstance(key, ast.Constant)
                    and key.value == "code"
                    and isinstance(value, ast.Constant)
                ):
                    codes.add(value.value)
    return codes


def test_every_validation_code_is_documented():
    codes = validation_codes()
    rows = table_rows(section(read("docs/errors.md"), "## Validation errors"))

    assert len(codes) >= 10  # the parse found the calls
    assert set(rows) - {"code"} == codes


def api_error_codes() -> set[str]:
    """``code="..."`` keywords where the API and its services raise errors."""
    sources = [*(PACKAGE / "api").rglob("*.py"), PACKAGE / "errors.py"]
    sources += [p for p in (PACKAGE / "engine").glob("*.py") if p.name != "validation.py"]
    sources += [*(PACKAGE / "curation").rglob("*.py"), PACKAGE / "storage" / "search.py"]
    codes = set()
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.keyword)
                and node.arg == "code"
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                codes.add(node.value.value)
    return codes


def test_every_api_error_code_is_documented():
    errors = section(read("docs/api.md"), "## Errors")

    assert {"not_found", "file_too_large", "internal_error"} <= api_error_codes()
    for code in api_error_codes():
        assert f"`{code}`" in errors, code


# -- cli.md ---------------------------------------------------------------------------------


def cli_commands() -> Iterator[tuple[str, Any]]:
    """(``datamill batch run``, click command) for every command, groups included."""

    def walk(command: Any, path: str) -> Iterator[tuple[str, Any]]:
        yield path, command
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, f"{path} {name}")

    yield from walk(typer.main.get_command(cli_app), "datamill")


def test_every_cli_command_and_option_is_documented():
    text = read("docs/cli.md")
    leaves = [(path, cmd) for path, cmd in cli_commands() if not getattr(cmd, "commands", None)]

    assert len(leaves) >= 10
    for path, command in leaves:
        body = section(text, f"## `{path}`")
        for param in command.params:
            if param.param_type_name != "option":
                continue
            for option in [*param.opts, *param.secondary_opts]:
                assert f"`{option}`" in body, f"{path} {option}"


def test_no_documented_command_is_gone():
    documented = re.findall(r"^## `(datamill[^`]*)`", read("docs/cli.md"), flags=re.M)

    leaves = {path for path, cmd in cli_commands() if not getattr(cmd, "commands", None)}

    assert set(documented) == leaves


def test_every_exit_code_is_documented():
    rows = table_rows(section(read("docs/cli.md"), "## Exit status"))

    assert set(rows) - {"status"} == {str(int(code)) for code in ExitCode}
    for code in ExitCode:
        assert rows[str(int(code))][1] == f"`{code.name}`"


def _shown_commands(text: str) -> Iterator[list[str]]:
    """The ``datamill ...`` command lines of a document's code blocks, as argument lists."""
    for block in code_blocks(text, "sh", ""):
        for line in block.splitlines():
            if not re.match(r"(?:[A-Z_]+=\S*\s+)*datamill\s", line):
                continue
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                words.pop(0)  # VAR=value in front of the command
            if words[:1] == ["datamill"]:
                yield [word.strip("[]") for word in words[1:]]


def test_every_command_shown_in_the_docs_exists_with_its_options():
    shown = 0
    for name in ["README.md", *(f"docs/{p.name}" for p in DOCS.glob("*.md"))]:
        for words in _shown_commands(read(name)):
            shown += 1
            command = typer.main.get_command(cli_app)
            while words and words[0] in getattr(command, "commands", {}):
                command = command.commands[words.pop(0)]
            default = getattr(command, "default_command", None)  # `datamill generate SPEC`
            if default and words and words[0] not in command.commands:
                command = command.commands[default]
            if getattr(command, "commands", None) and words[:1] not in ([], ["..."]):
                pytest.fail(f"{name}: no command {words[0]!r} in {command.name}")
            known = {
                opt for param in command.params for opt in [*param.opts, *param.secondary_opts]
            }
            for word in words:
                if word.startswith("-"):
                    assert word.split("=")[0] in known | {"--help"}, f"{name}: {word}"
    assert shown >= 10


# -- api.md ---------------------------------------------------------------------------------


def api_routes() -> set[str]:
    """``METHOD /path`` for every route of the app (the OpenAPI description lists them all;
    plain routes outside it are added from ``app.routes``)."""
    app = create_app(load_settings({}))
    routes = {
        f"{method.upper()} {path}"
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    from datamill.callers import flat_routes

    for route in flat_routes(app.routes):
        methods = getattr(route, "methods", None)
        if methods and getattr(route, "include_in_schema", True) is False:
            routes |= {f"{m} {route.path}" for m in methods if m != "HEAD"}
    return routes


def test_every_api_route_is_documented_and_nothing_else():
    text = read("docs/api.md")
    documented = set(re.findall(r"^\| `((?:GET|POST|DELETE|PUT|PATCH) [^`]+)`", text, flags=re.M))

    assert len(api_routes()) >= 13
    assert documented == api_routes()


def test_the_route_table_says_who_may_call_each_route_as_the_route_declares():
    from datamill.callers import route_policies

    text = read("docs/api.md")
    rows = re.findall(r"^\| `((?:GET|POST|DELETE|PUT|PATCH) [^`]+)` \| (\w+) \|", text, flags=re.M)
    declared = {
        f"{method} {path}".replace("{model:path}", "{model}"): policies
        for (method, path), policies in route_policies(create_app(load_settings({}))).items()
    }
    assert len(rows) == len(declared)
    for route, who in rows:
        [policy] = declared[route]
        assert who == ("public" if policy.role is None else policy.role.value), route


# -- providers.md ---------------------------------------------------------------------------


def test_every_builtin_provider_and_the_plugin_group_are_documented():
    text = read("docs/providers.md")

    for name in DEFAULT_PROVIDERS:
        assert f"## `{name}`" in text.splitlines(), name
    assert f'"{ENTRY_POINT_GROUP}"' in text
    assert "DEFAULT_PROVIDERS" in text


async def test_the_plugin_example_works(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from datamill.clock import SystemClock
    from datamill.errors import ProviderError
    from datamill.plugins import create_provider
    from datamill.providers.base import Endpoint, ProviderCall, ProviderContext
    from datamill.providers.http import HttpPool

    text = read("docs/providers.md")
    [source] = [block for block in code_blocks(text, "python") if "create_echo_provider" in block]
    [config] = [block for block in code_blocks(text, "toml") if 'provider = "echo"' in block]
    module = types.ModuleType("datamill_echo")
    exec(compile(source, "docs/providers.md", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, "datamill_echo", module)
    monkeypatch.setitem(DEFAULT_PROVIDERS, "echo", "datamill_echo:create_echo_provider")
    (tmp_path / "datamill.toml").write_text(config)

    [deployment] = load_settings({}).deployments
    http = HttpPool()
    provider = create_provider(deployment, ProviderContext(http=http, clock=SystemClock()))
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    answer = await provider.complete(ProviderCall(Endpoint.chat_completions, body, 5.0))
    with pytest.raises(ProviderError, match="does not embed"):
        await provider.embed(ProviderCall(Endpoint.embeddings, {"model": "m", "input": "x"}, 5.0))
    await provider.aclose()
    await http.aclose()

    import orjson

    content = orjson.loads(answer.body)["choices"][0]["message"]["content"]
    assert content == "you said: hi"
    assert provider.capabilities.embeddings is False


# -- README.md ------------------------------------------------------------------------------


def test_readme_starts_with_the_two_commands():
    first = next(code_blocks(read("README.md")))

    assert [line.split("#")[0].strip() for line in first.splitlines()] == ["make run", "make test"]


def test_readme_links_every_doc_and_every_link_resolves():
    text = read("README.md")
    links = set(re.findall(r"\]\(([^)#]+\.md)(?:#[^)]*)?\)", text))

    assert {f"docs/{p.name}" for p in DOCS.glob("*.md")} <= links
    for document in [ROOT / "README.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", document.read_text()):
            assert (document.parent / target).is_file(), f"{document.name}: {target}"


@pytest.mark.slow
def test_readme_sdk_tour_runs_against_a_server(tmp_path: Path):
    """The README's openai SDK snippet, unchanged but for the port, against `datamill serve`
    in local mode."""
    done = run_readme_tour(tmp_path)

    assert done.returncode == 0, done.stderr
    check_tour_output(done.stdout)


@pytest.mark.slow
def test_readme_tour_with_a_member_key_on_a_server_beyond_loopback(tmp_path: Path):
    """The tour again with a member key against `serve --host 0.0.0.0`; a reviewer key may
    read but gets 403 on batch creation, and no key gets 401, through the SDK."""
    import openai

    member, reviewer = (
        json.loads(
            datamill_output(
                tmp_path, "keys", "create", "--project", "default", "--role", role, "--json"
            )
        )["key"]
        for role in ("member", "reviewer")
    )

    def sdk_checks(url: str) -> None:
        def client(key: str) -> openai.OpenAI:
            return openai.OpenAI(
                base_url=f"{url}/v1",
                api_key=key,
                max_retries=0,
                http_client=openai.DefaultHttpxClient(trust_env=False),
            )

        with client(reviewer) as as_reviewer, client("unused") as anonymous:
            files = as_reviewer.files.list()
            assert files.data  # the tour's upload: the reviewer reads the project's files
            with pytest.raises(openai.PermissionDeniedError, match="member role"):
                as_reviewer.batches.create(
                    input_file_id=files.data[0].id,
                    endpoint="/v1/chat/completions",
                    completion_window="24h",
                )
            with pytest.raises(openai.AuthenticationError):
                anonymous.files.list()

    done = run_readme_tour(tmp_path, host="0.0.0.0", api_key=member, after=sdk_checks)

    assert done.returncode == 0, done.stderr
    check_tour_output(done.stdout)


def datamill_output(cwd: Path, *args: str) -> str:
    import subprocess

    from tests.cli.conftest import COMMAND

    done = subprocess.run(
        [*COMMAND, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_readme_tour(
    tmp_path: Path,
    *,
    host: str | None = None,
    api_key: str | None = None,
    after: Any = None,
) -> Any:
    """Serve in ``tmp_path`` (on ``host``), run the README's tour (with ``api_key``), then
    ``after(url)``; the tour's finished process."""
    import subprocess

    from tests.cli.conftest import COMMAND, Running, free_port, wait_until_healthy

    text = read("README.md")
    [requests] = [b for b in code_blocks(text, "sh") if b.startswith("cat > requests.jsonl")]
    [tour] = [b for b in code_blocks(text, "python") if "client.batches.create" in b]
    subprocess.run(["sh", "-c", requests], cwd=tmp_path, check=True)
    port = free_port()
    tour = tour.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    if api_key is not None:
        assert 'api_key="unused"' in tour
        tour = tour.replace('api_key="unused"', f'api_key="{api_key}"')
    (tmp_path / "tour.py").write_text(tour)
    out, err = tmp_path / "serve.out", tmp_path / "serve.err"
    where = ["--host", host] if host else []
    with out.open("wb") as stdout, err.open("wb") as stderr:
        server = Running(
            subprocess.Popen(
                [*COMMAND, "serve", *where, "--port", str(port)],
                cwd=tmp_path,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            ),
            out,
            err,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(server, url)
        done = subprocess.run(
            [sys.executable, "-W", "error", "tour.py"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if after is not None and done.returncode == 0:
            after(url)
    finally:
        server.kill()
    return done


def check_tour_output(stdout: str) -> None:
    status, *lines, chat = [line for line in stdout.splitlines() if line]
    assert status.startswith("completed")
    assert [line.split('"custom_id":"')[1].split('"')[0] for line in lines] == ["q1", "q2"]
    assert "Say hello in French" in chat  # the simulator's streamed answer quotes the question


def test_the_field_table_is_the_adapters_own():
    from datamill.providers.anthropic.provider import AnthropicProvider
    from datamill.providers.fields import (
        CHAT_FIELDS,
        EMBEDDING_FIELDS,
        MESSAGE_FEATURES,
        markdown_table,
    )
    from datamill.providers.gemini.provider import GeminiProvider
    from datamill.providers.openai import OpenAIProvider
    from datamill.providers.sim.provider import SimProvider

    classes = {
        "openai": OpenAIProvider,
        "anthropic": AnthropicProvider,
        "gemini": GeminiProvider,
        "sim": SimProvider,
    }
    assert set(classes) == set(DEFAULT_PROVIDERS)  # a new built-in provider joins the table
    for cls in classes.values():
        assert set(CHAT_FIELDS + MESSAGE_FEATURES) <= set(cls.chat_fields), cls
    text = section(read("docs/providers.md"), "## Which OpenAI fields each provider takes")
    chat = markdown_table(
        {n: c.chat_fields for n, c in classes.items()}, CHAT_FIELDS + MESSAGE_FEATURES
    )
    embedders = {n: c.embedding_fields for n, c in classes.items() if c.capabilities.embeddings}
    assert chat in text
    assert markdown_table(embedders, EMBEDDING_FIELDS) in text


def test_the_responses_translation_table_is_the_code_s_own():
    from datamill.providers.fields import markdown_table
    from datamill.providers.responses import RESPONSE_FIELDS

    text = section(read("docs/providers.md"), "### The Responses API")
    assert markdown_table({"translated": RESPONSE_FIELDS}, tuple(RESPONSE_FIELDS)) in text


# -- dedup.md -------------------------------------------------------------------------------


def test_the_dedup_defaults_and_every_index_method_are_documented():
    from datamill.nlp import dedup

    text = read("docs/dedup.md")
    rows = table_rows(section(text, "## Thresholds"))

    assert rows["threshold"][1] == f"`{dedup.DEFAULT_THRESHOLD}`"
    assert rows["lexical_threshold"][1] == f"`{dedup.DEFAULT_LEXICAL_THRESHOLD}`"
    assert rows["prefilter_threshold"][1] == f"`{dedup.PREFILTER_THRESHOLD}`"
    assert rows[f"**{dedup.DEFAULT_THRESHOLD}**"]  # the default's row of the sweep is marked
    public = [name for name in vars(dedup.NearDuplicateIndex) if not name.startswith("_")]
    assert len(public) >= 9
    for name in public:
        assert re.search(rf"`[^`\n]*\b{name}\b[^`\n]*`", text), name  # in code quotes


# -- generation.md ----------------------------------------------------------------------------


def _spec_keys(model: Any, prefix: str = "") -> Iterator[str]:
    """Every key path of the generation spec (``sample_types[].schema``)."""
    from typing import get_args

    from pydantic import BaseModel

    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        yield key
        if key == "sample_types[].quality":
            continue  # the same keys as the spec's `quality`
        for inner in (field.annotation, *get_args(field.annotation)):
            for candidate in (inner, *get_args(inner)):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    many = "[]" if "list" in str(field.annotation) else ""
                    yield from _spec_keys(candidate, f"{key}{many}.")


def test_every_spec_key_is_documented_and_the_schema_file_is_current():
    from datamill.generation.spec import GenerationSpec, spec_json_schema

    rows = table_rows(section(read("docs/generation.md"), "### Keys"))
    keys = set(_spec_keys(GenerationSpec))

    assert len(keys) > 40
    assert keys <= set(rows), keys - set(rows)
    stored = orjson.loads((DOCS / "generation-spec.schema.json").read_bytes())
    assert stored == spec_json_schema()
