"""The container and deployment files, checked without building or running anything (no
base image can be fetched here): the Dockerfile's structure, the compose file through
Debian's ``docker-compose config``, and the Kubernetes manifests against the API's JSON
schemas shipped offline by ``kubernetes-validate``. With ``CI=true`` a missing validator
fails the test instead of skipping it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from datamill.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
KUBERNETES_VERSION = "1.30.0"  # the oldest Kubernetes release still supported upstream


def need(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required under CI=true; `make test` installs it)")
    pytest.skip(reason)


# -- Dockerfile ------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (INSTRUCTION, arguments), continuations joined."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), " ".join(rest.split())))
    return instructions


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in dockerfile():
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def test_the_image_is_built_in_two_stages_and_the_runtime_takes_only_the_wheels():
    build, runtime = stages()

    assert re.fullmatch(r"\S+ AS build", build[0][1])
    assert re.fullmatch(r"\S+ AS runtime", runtime[0][1])
    assert any(i == "RUN" and "pip wheel" in args for i, args in build)
    installs = [args for i, args in runtime if i == "RUN" and "pip install" in args]
    assert len(installs) == 1
    assert "from=build" in installs[0]
    assert "--no-index" in installs[0]  # nothing downloaded in the runtime stage
    assert not any(i == "COPY" and "--from" not in args for i, args in runtime)


def test_the_runtime_runs_as_a_fixed_unprivileged_user_with_its_own_state_directory():
    runtime = stages()[-1]
    users = [args for i, args in runtime if i == "USER"]

    assert users == ["10001:10001"]  # numeric: runAsNonRoot can check it
    home = [args for i, args in runtime if i == "ENV" and "DATAMILL_HOME=" in args]
    assert home
    assert "DATAMILL_HOME=/var/lib/datamill" in home[0]
    assert ("VOLUME", '["/var/lib/datamill"]') in runtime
    setup = next(args for i, args in runtime if i == "RUN" and "useradd" in args)
    assert "--uid 10001" in setup
    assert "install -d -o datamill -g datamill -m 0700 /var/lib/datamill" in setup
    # The user is made and the directory owned before USER switches to it.
    assert runtime.index(("RUN", setup)) < runtime.index(("USER", "10001:10001"))


def test_the_extras_are_a_build_argument_and_embeddings_is_one_of_them():
    build, runtime = stages()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    optional = set(project["optional-dependencies"]) - {"dev"}

    assert "embeddings" in optional
    for stage in (build, runtime):
        assert ("ARG", 'EXTRAS=""') in stage  # none by default
        pip = next(args for i, args in stage if i == "RUN" and "pip " in args)
        assert "${EXTRAS:+[${EXTRAS}]}" in pip
    header = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "--build-arg EXTRAS=embeddings" in header


def test_the_health_check_asks_readyz_and_the_default_command_serves():
    runtime = stages()[-1]
    checks = [args for i, args in runtime if i == "HEALTHCHECK"]

    assert len(checks) == 1
    assert "/readyz" in checks[0]
    assert ("ENTRYPOINT", '["datamill"]') in runtime
    assert ("CMD", '["serve"]') in runtime
    assert ("EXPOSE", "8000") in runtime
    env = " ".join(args for i, args in runtime if i == "ENV")
    assert "DATAMILL_HOST=0.0.0.0" in env  # a container is reached from outside itself


def test_the_build_context_holds_only_what_the_image_needs():
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()

    assert ignored[ignored.index("*") :] == [
        "*",
        "!pyproject.toml",
        "!README.md",
        "!datamill/",
        "**/__pycache__",
    ]


# -- compose ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file as ``docker-compose config`` resolves it."""
    binary = shutil.which("docker-compose")
    if binary is None:
        need("docker-compose is not installed (Debian: apt-get install docker-compose)")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "POSTGRES_PASSWORD": "secret",
        "OPENAI_API_KEY": "sk-test",
    }
    result = subprocess.run(
        [binary, "--project-name", "datamill", "-f", str(DEPLOY / "compose.yaml"), "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_compose_runs_postgres_one_api_and_two_workers(compose):
    services = compose["services"]

    assert set(services) == {"postgres", "migrate", "api", "worker-1", "worker-2"}
    assert services["api"]["command"] == ["serve"]
    assert services["migrate"]["command"] == ["migrate"]
    for name in ("worker-1", "worker-2"):
        assert services[name]["command"] == ["worker"]
        assert services[name]["healthcheck"] == {"test": ["NONE"]}  # no HTTP to probe
    assert services["api"]["environment"]["DATAMILL_WORKERS"] == "0"
    url = "postgresql://datamill:secret@postgres:5432/datamill"
    for name in ("migrate", "api", "worker-1", "worker-2"):
        service = services[name]
        assert service["environment"]["DATAMILL_DATABASE_URL"] == url
        assert service["environment"]["OPENAI_API_KEY"] == "sk-test"
        assert service["build"]["args"] == {"EXTRAS": ""}
        assert service["image"] == services["api"]["image"]


def test_compose_starts_in_order_and_checks_readyz(compose):
    services = compose["services"]

    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("api", "worker-1", "worker-2"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }
    check = services["api"]["healthcheck"]
    assert "http://127.0.0.1:8000/readyz" in " ".join(check["test"])
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    # Published on loopback unless DATAMILL_PUBLISH says otherwise.
    assert services["api"]["ports"] == ["127.0.0.1:8000:8000/tcp"]


def environment_table() -> dict[str, str]:
    """The variables of docs/operations.md's deployment environment table."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    table = text[text.index("## Deployment") :].split("### Environment", 1)[1]
    table = table.split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", table, flags=re.M))


def test_every_variable_compose_sets_or_reads_is_documented(compose):
    documented = environment_table()
    settings = {f"DATAMILL_{name.upper()}" for name in Settings.model_fields}
    read = set(re.findall(r"\$\{(\w+)", (DEPLOY / "compose.yaml").read_text(encoding="utf-8")))
    set_ = {
        variable
        for name in ("migrate", "api", "worker-1")
        for variable in compose["services"][name]["environment"]
    }

    assert read - set(documented) == set()
    assert set_ - set(documented) == set()
    # A DATAMILL_ variable a container gets is a setting; those compose only reads are not.
    assert {v for v in set_ if v.startswith("DATAMILL_")} <= settings
    assert {v for v in read - set_ if v.startswith("DATAMILL_")}.isdisjoint(settings)


def test_every_setting_the_manifests_pass_is_documented():
    documented = environment_table()
    passed = {
        *by_kind("ConfigMap")["datamill-config"]["data"],
        *by_kind("Secret")["datamill-secrets"]["stringData"],
        *(
            item["name"]
            for d in by_kind("Deployment").values()
            for item in containers(d)[0].get("env", [])
        ),
    }

    assert passed - set(documented) == set()


# -- Kubernetes ------------------------------------------------------------------------------


def manifests() -> list[dict[str, Any]]:
    return [
        document
        for path in MANIFESTS
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if document
    ]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests() if m["kind"] == kind}


def test_every_manifest_is_valid_against_the_kubernetes_schemas():
    try:
        import kubernetes_validate
    except ImportError:
        need("kubernetes-validate is not installed (the dev extra has it)")

    assert MANIFESTS
    for document in manifests():
        # strict: a misspelt or misplaced field fails, as `kubectl apply --validate` would.
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_a_misspelt_field_fails_the_schema_check():
    try:
        import kubernetes_validate
    except ImportError:
        need("kubernetes-validate is not installed (the dev extra has it)")
    api = by_kind("Deployment")["datamill-api"]
    container = api["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(api, KUBERNETES_VERSION, strict=True)


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return list(deployment["spec"]["template"]["spec"]["containers"])


def test_the_api_deployment_probes_readyz_and_healthz():
    api = by_kind("Deployment")["datamill-api"]
    (container,) = containers(api)

    assert container["args"] == ["serve"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # A readiness check times out after 3 s on its own: the probe must wait longer.
    assert container["readinessProbe"]["timeoutSeconds"] > 3
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env == {"DATAMILL_HOST": "0.0.0.0", "DATAMILL_PORT": "8000", "DATAMILL_WORKERS": "0"}
    service = by_kind("Service")["datamill-api"]
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]


def test_workers_scale_apart_and_stop_gracefully():
    worker = by_kind("Deployment")["datamill-worker"]
    (container,) = containers(worker)

    assert worker["spec"]["replicas"] == 2
    assert container["args"] == ["worker"]
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30


def test_keys_come_from_the_secret_and_postgres_is_an_external_service():
    secrets = by_kind("Secret")
    (secret,) = secrets.values()
    assert "DATAMILL_DATABASE_URL" in secret["stringData"]
    assert "@datamill-postgres:5432/" in secret["stringData"]["DATAMILL_DATABASE_URL"]
    postgres = by_kind("Service")["datamill-postgres"]
    assert postgres["spec"]["type"] == "ExternalName"
    pods = [*by_kind("Deployment").values(), *by_kind("Job").values()]
    assert len(pods) == 3
    for pod in pods:
        for container in containers(pod):
            sources = [next(iter(source.values()))["name"] for source in container["envFrom"]]
            assert secret["metadata"]["name"] in sources
            assert "datamill-config" in sources
            assert container["image"] == containers(pods[0])[0]["image"]
        security = pod["spec"]["template"]["spec"]["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["runAsUser"] == 10001


def test_the_config_map_sets_only_settings():
    (config,) = by_kind("ConfigMap").values()
    settings = {f"DATAMILL_{name.upper()}" for name in Settings.model_fields}

    assert set(config["data"]) <= settings
